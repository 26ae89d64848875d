"""Loss terms: each reads one split of the batch and returns a scalar.

This module holds the likelihood terms; preference terms (NPO, SimNPO, DPO) are in
:mod:`~unlearn_bench.losses.preference`, representation terms (RMU) in :mod:`~unlearn_bench.losses.rmu`.
A method is a weighted sum of terms (:class:`~unlearn_bench.losses.method.ComposedLoss`), e.g.
GD = NegativeNLL(forget) + λ·NLL(retain). Labels are ``-100`` on prompt and padding tokens, so
every term sees answer tokens only."""

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

    @property
    def splits(self) -> set[str]:
        """Every split the term reads."""
        return {self.split}

    @property
    def paired(self) -> dict[str, str]:
        """``{split: partner}``: splits whose rows must be batched row-aligned with ``partner``."""
        return {}


class NLL(LossTerm):
    """L = mean_i nll_i on the split: plain fine-tuning (the retain term of GD, IDK, NPO; on the
    ``scope`` split, SU's scope term NLL(y_r | x_f ⊕ x_r))."""

    def forward(self, cache) -> Tensor:
        return cache.sequence_nll(self.split).mean()


class NegativeNLL(LossTerm):
    """L = -mean_i nll_i on the split: gradient ascent on the forget data (GA, GD's forget term)."""

    def forward(self, cache) -> Tensor:
        return -cache.sequence_nll(self.split).mean()


class KL(LossTerm):
    """Keeps the next-token distributions on the split close to the frozen reference model's:

    L = mean_i (1/|y_i|) Σ_t KL(π_ref(·|x_i, y_i,<t) ‖ π_θ(·|x_i, y_i,<t)),

    over the positions that predict answer tokens (the retain term of ``method=kl``).
    """

    needs_reference = True

    def forward(self, cache) -> Tensor:
        log_p, log_ref = cache.log_probs("model", self.split), cache.log_probs("reference", self.split)
        token_kl = (log_ref.exp() * (log_ref - log_p)).sum(-1)
        mask = cache.answer_mask(self.split)
        return ((token_kl * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
