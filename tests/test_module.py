import functools

import torch
from test_losses import FORGET, Bigram

from unlearn_bench.losses import NLL, NPO, ComposedLoss
from unlearn_bench.module import ComposedLossModule


def module_for(terms):
    return ComposedLossModule(Bigram(), ComposedLoss(terms), functools.partial(torch.optim.SGD, lr=1.0))


def test_reference_is_a_frozen_copy_made_only_when_a_term_needs_it():
    assert module_for({"r": NLL("forget")}).reference is None
    module = module_for({"f": NPO("forget")})
    before = module.reference.w.detach().clone()
    module.train()
    assert not module.reference.training and not module.reference.w.requires_grad
    optimizer = torch.optim.SGD(module.model.parameters(), lr=1.0)
    module.loss(module.model, {"forget": FORGET}, module.reference)[0].backward()
    optimizer.step()
    assert not torch.equal(module.model.w, before)  # the model moved
    assert torch.equal(module.reference.w, before)  # the reference did not


def fit_one_step(module, tmp_path) -> list[str]:
    """The warnings of fitting ``module`` for one step on FORGET."""
    import warnings

    import lightning as L
    from torch.utils.data import DataLoader

    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, DataLoader([{"forget": FORGET}], batch_size=None))
    return [str(w.message) for w in caught]


def test_the_frozen_reference_alone_in_eval_mode_does_not_warn(tmp_path):
    quiet = fit_one_step(module_for({"f": NPO("forget")}), tmp_path)
    assert not [m for m in quiet if "in eval mode" in m]
    # a module of the trained model left in eval mode still does
    module = module_for({"f": NPO("forget")})
    module.model.head = torch.nn.Linear(1, 1).eval()
    assert [m for m in fit_one_step(module, tmp_path) if "in eval mode" in m]
