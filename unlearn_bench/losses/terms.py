"""Loss terms: each reads one split of the batch and returns a scalar.

This module holds the likelihood terms; preference terms (NPO, SimNPO, DPO) are in
:mod:`~unlearn_bench.losses.preference`, representation terms (RMU) in :mod:`~unlearn_bench.losses.rmu`.
A method is a weighted sum of terms (:class:`~unlearn_bench.losses.method.ComposedLoss`), e.g.
GD = NegativeNLL(forget) + λ·NLL(retain). Labels are ``-100`` on prompt and padding tokens, so
every term sees answer tokens only."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unlearn_bench.data.qa import IGNORE_INDEX
from unlearn_bench.errors import ArgumentError


def answer_nll(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample summed negative log-likelihood of the answer tokens, and their count.

    Σ_t -log p(y_i,t | x_i, y_i,<t), with logits at position t predicting token t+1 (the usual
    causal shift); both of shape ``[batch]``. Only the answer-predicting positions are taken to
    float32: at a 128k vocabulary a float32 copy of every position (prompt and padding included)
    would be the largest tensor of a training step.
    """
    labels = labels[:, 1:]
    mask = labels != IGNORE_INDEX
    rows, cols = mask.nonzero(as_tuple=True)
    token_nll = nn.functional.cross_entropy(logits[rows, cols].float(), labels[rows, cols], reduction="none")
    return per_sample_sum(token_nll, rows, cols, labels.shape), mask.sum(1)


def per_sample_sum(values: Tensor, rows: Tensor, cols: Tensor, shape: torch.Size) -> Tensor:
    """``[batch]`` sums of per-position ``values`` given at positions ``(rows, cols)`` of ``shape``
    (scattered into zeros without accumulation, so it stays deterministic on CUDA)."""
    dense = values.new_zeros(shape)
    dense[rows, cols] = values
    return dense.sum(1)


def sequence_nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-sample mean answer-token NLL: nll_i = -(1/|y_i|) Σ_t log p(y_i,t | x_i, y_i,<t).
    An empty answer gives 0."""
    total, count = answer_nll(logits, labels)
    return total / count.clamp(min=1)


class LossTerm(nn.Module):
    """A term of an unlearning objective on one split (``forget``, ``retain``, ...)."""

    needs_reference = False  # True: reads the frozen reference model (the model before unlearning)
    needs_hidden_states = False  # True: reads decoder-layer activations (the forward then returns them all)

    def __init__(self, split: str, weight: float = 1.0):
        super().__init__()
        if weight < 0:
            raise ArgumentError("weight", weight, f"(of the {type(self).__name__} term on {split!r}) must be >= 0")
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

    def check_depth(self, layers: int) -> None:
        """Raises ArgumentError if the term cannot work on a model of ``layers`` decoder layers
        (checked before anything is loaded or trained, where the model's config tells)."""


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
        log_p, log_ref = cache.answer_log_probs("model", self.split), cache.answer_log_probs("reference", self.split)
        token_kl = (log_ref.exp() * (log_ref - log_p)).sum(-1)
        return cache.per_sample_mean(token_kl, self.split).mean()
