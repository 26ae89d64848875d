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
