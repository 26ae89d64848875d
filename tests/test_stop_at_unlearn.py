"""When StopAtUnlearn checks and where it stops, on a scripted unlearning run (its checks replaced
by a known recall curve, its signal by a known agreement curve)."""

from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset

from conftest import unigram_model
from unlearn_bench.callbacks import StopAtUnlearn
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.eval import evaluate
from unlearn_bench.eval.evaluate import score_set
from unlearn_bench.tokenizer import train_tokenizer


def scripted_run(recall, agreement, max_steps=300, every_n_steps=2, max_gap_steps=20, stop=None):
    """The steps at which the callback checked, and the step it stopped at (None: never); ``stop``
    replaces the default callback (target 0.28, no patience)."""
    stop = stop or StopAtUnlearn(None, None, 0.28, every_n_steps, 1, 1, max_gap_steps)
    trainer = SimpleNamespace(global_step=0, num_training_batches=7, accumulate_grad_batches=1, should_stop=False)
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


@pytest.mark.parametrize("curve", ["plateau", "climbs_back"])
def test_a_run_that_stops_improving_short_of_the_target_stops_after_patience_epochs(curve):
    """A defense that stops forgetting (recall flat at 0.55), or NPO's recall climbing back from
    0.35: the run stops 10 epochs (70 steps of 7) after its best check, not at the 300-step cap."""
    if curve == "plateau":
        recall = lambda s: max(0.55, 1 - s / 50)
    else:
        recall = lambda s: 1 - s / 40 if s <= 26 else min(0.6, 0.35 + (s - 26) / 200)
    stop = StopAtUnlearn(None, None, 0.28, 2, 1, 1, 20, patience_epochs=10)
    checked, stopped = scripted_run(recall, lambda s: 1 - min(s, 26) / 100, stop=stop)
    best = min(checked, key=recall)
    assert stop.stalled and not stop.reached
    assert best + 70 <= stopped <= best + 70 + 20  # the first check 10 epochs after the best
    assert scripted_run(recall, lambda s: 1 - min(s, 26) / 100)[1] is None  # without patience: on to the cap


def test_a_plateau_shorter_than_the_patience_still_reaches_the_target():
    """GD's recall often pauses for a few epochs (here 60 steps) before falling again: patience must not end it."""
    recall = lambda s: 1 - s / 100 if s < 40 else (0.6 if s < 100 else 0.6 - (s - 100) / 50)
    stop = StopAtUnlearn(None, None, 0.28, 2, 1, 1, 20, patience_epochs=10)
    _, stopped = scripted_run(recall, lambda s: 1 - s / 300, stop=stop)
    assert stop.reached and not stop.stalled and recall(stopped) <= 0.28


def test_the_eval_reuses_the_forget_scores_of_a_check_at_the_last_step(monkeypatch):
    """The check that stops unlearning generated the forget set's answers on the final model, with
    the eval's settings: the eval takes its scores instead of generating the same answers again."""
    tokenizer = train_tokenizer(["Who? alpha beta", "Where? beta"] * 3, 300)
    (alpha,) = tokenizer(" alpha", add_special_tokens=False).input_ids
    model, encoder = unigram_model(len(tokenizer), [alpha]), QAEncoder(tokenizer, "Q: {question}\nA:")
    forget = Dataset.from_dict({"question": ["Who?", "Where?"], "answer": ["alpha beta", "beta"]})
    stop = StopAtUnlearn(encoder, forget, 1.0, every_n_steps=2, batch_size=4, max_new_tokens=4)
    trainer = SimpleNamespace(global_step=1, num_training_batches=7, should_stop=False)
    outputs = {"agreement": {"forget": torch.tensor(1.0)}}
    stop.on_train_batch_end(trainer, SimpleNamespace(model=model), outputs, None, 0)
    assert stop.final_scores(1) is None  # no check yet
    trainer.global_step = 2
    stop.on_train_batch_end(trainer, SimpleNamespace(model=model), outputs, None, 0)
    assert trainer.should_stop and stop.generated == 1
    expected = score_set(model, encoder, forget, batch_size=4, max_new_tokens=4, desc=None)
    assert stop.final_scores(2) == expected and expected["rougeL_recall"] == 0.25  # (1/2 + 0) / 2
    assert stop.final_scores(3) is None  # a training step after the check: stale

    generated = []
    real = evaluate.generate_answers
    monkeypatch.setattr(
        evaluate, "generate_answers", lambda m, e, q, *a, **k: generated.append(q) or real(m, e, q, *a, **k)
    )
    sets = {"forget": forget, "retain": Dataset.from_dict({"question": ["Where?"], "answer": ["beta"]})}
    kwargs = dict(batch_size=4, max_new_tokens=4, max_samples=None)
    per_set = evaluate.score_eval_sets(model, encoder, sets, [], None, {}, {"forget": stop.final_scores(2)}, **kwargs)
    assert per_set["forget"] == expected and generated == [["Where?"]]  # only the retain set was generated
