"""Loss terms: each reads one split of the batch and returns a scalar.

A method is a weighted sum of terms (:class:`~unlearn_bench.losses.method.ComposedLoss`), e.g.
GD = NegativeNLL(forget) + λ·NLL(retain). Labels are ``-100`` on prompt and padding tokens, so
every term sees answer tokens only.
"""

from __future__ import annotations

from torch import Tensor, nn

IGNORE_INDEX = -100


def answer_nll(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample summed negative log-likelihood of the answer tokens, and their count.

    Σ_t -log p(y_i,t | x_i, y_i,<t), with logits at position t predicting token t+1 (the usual
    causal shift); both of shape ``[batch]``.
    """
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != IGNORE_INDEX
    token_nll = nn.functional.cross_entropy(
        logits.transpose(1, 2), labels.masked_fill(~mask, 0), reduction="none"
    )
    return (token_nll * mask).sum(1), mask.sum(1)


def sequence_nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-sample mean answer-token NLL: nll_i = -(1/|y_i|) Σ_t log p(y_i,t | x_i, y_i,<t).
    An empty answer gives 0."""
    total, count = answer_nll(logits, labels)
    return total / count.clamp(min=1)


class LossTerm(nn.Module):
    """A term of an unlearning objective on one split (``forget``, ``retain``, ...)."""

    needs_reference = False  # True: reads the frozen reference model (the model before unlearning)

    def __init__(self, split: str, weight: float = 1.0):
        super().__init__()
        if weight < 0:
            raise ValueError(f"the weight of the {type(self).__name__} term on {split!r} is {weight}; it must be >= 0")
        self.split = split
        self.weight = float(weight)


class NLL(LossTerm):
    """L = mean_i nll_i on the split: plain fine-tuning (the retain term of GD, IDK, NPO; on the
    ``scope`` split, SU's scope term NLL(y_r | x_f ⊕ x_r))."""

    def forward(self, cache) -> Tensor:
        return cache.sequence_nll(self.split).mean()


class NegativeNLL(LossTerm):
    """L = -mean_i nll_i on the split: gradient ascent on the forget data (GA, GD's forget term)."""

    def forward(self, cache) -> Tensor:
        return -cache.sequence_nll(self.split).mean()


class NPO(LossTerm):
    """Negative preference optimisation (Zhang et al. 2024) on the split:

    L = (2/β) · mean_i log(1 + (π_θ(y_i|x_i) / π_ref(y_i|x_i))^β)
      = (2/β) · mean_i softplus(β · (NLL_ref,i − NLL_θ,i)),

    NLL the summed answer-token NLL and π_ref the frozen reference model. Bounded below by 0,
    unlike gradient ascent, so forgetting slows down instead of running away.
    """

    needs_reference = True

    def __init__(self, split: str, beta: float = 0.1, weight: float = 1.0):
        super().__init__(split, weight)
        if beta <= 0:
            raise ValueError(f"NPO's beta is {beta}; it must be > 0")
        self.beta = float(beta)

    def forward(self, cache) -> Tensor:
        log_ratio = cache.reference_nll_sum(self.split) - cache.nll_sum(self.split)
        return 2 / self.beta * nn.functional.softplus(self.beta * log_ratio).mean()
