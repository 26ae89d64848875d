"""When StopAtUnlearn checks and where it stops, on a scripted unlearning run (its checks replaced
by a known recall curve, its signal by a known agreement curve)."""

from types import SimpleNamespace

import pytest
import torch

from unlearn_bench.callbacks import StopAtUnlearn


def scripted_run(recall, agreement, max_steps=300, every_n_steps=2, max_gap_steps=20):
    """The steps at which the callback checked, and the step it stopped at (None: never)."""
    stop = StopAtUnlearn(None, None, 0.28, every_n_steps, 1, 1, max_gap_steps)
    trainer = SimpleNamespace(global_step=0, num_training_batches=7, should_stop=False)
    checked = []
    stop.check = lambda model: (checked.append(trainer.global_step), (recall(trainer.global_step), True))[1]
    for step in range(1, max_steps + 1):
        trainer.global_step = step
        outputs = {"loss": None, "agreement": {"forget": torch.tensor(agreement(step)), "retain": torch.tensor(1.0)}}
        stop.on_train_batch_end(trainer, SimpleNamespace(model=None), outputs, None, 0)
        if trainer.should_stop:
            return checked, step
    return checked, None


@pytest.mark.parametrize("curve", ["linear", "late_cliff"])
def test_checks_are_few_and_the_stop_lands_where_dense_checks_would(curve):
    if curve == "linear":  # recall and agreement fall together; recall reaches 0.28 at step 72
        recall, agreement = (lambda s: 1 - s / 100), (lambda s: 1 - s / 200)
    else:  # nothing moves for 60 steps, then both fall fast; recall reaches 0.28 at step 84
        recall = lambda s: 1.0 if s < 60 else 1 - (s - 60) / 33.3
        agreement = lambda s: 1.0 if s < 60 else 1 - (s - 60) / 50
    dense = next(s for s in range(2, 300, 2) if recall(s) <= 0.28)  # checking every 2 steps
    checked, stopped = scripted_run(recall, agreement)
    assert stopped in (dense, dense + 1)  # the last checks are every 2 steps, from an odd or even step
    assert len(checked) < dense / 2 / 2  # under half the checks of checking every 2 steps
    gaps = [b - a for a, b in zip([0, *checked], checked)]
    assert min(gaps) >= 2 and max(gaps) <= 20


def test_a_recall_that_never_falls_is_still_checked_every_max_gap_steps():
    checked, stopped = scripted_run(lambda s: 0.9, lambda s: 1.0, max_steps=100)
    assert stopped is None and checked == [2, 22, 42, 62, 82]
