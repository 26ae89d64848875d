"""TOFU's likelihood metrics (Maini et al. 2024), from per-item mean answer-token NLLs.

Conventions follow TOFU and open-unlearning so our numbers sit beside published ones:
P(y|x) = exp(−mean-token NLL of y), and the "perturbed" probability of an item is the
geometric mean over its perturbed answers, exp(−mean_k nll_k).
"""

from __future__ import annotations

import math

import torch
from scipy.stats import ks_2samp
from torch import Tensor

from unlearn_bench.eval.per_item import PerItemMetric


class AnswerProbability(PerItemMetric):
    """Mean over items of p_i = exp(−nll_i) for the true answer; with ``normalise`` (TOFU's real
    authors and world facts) p_i / (p_i + Σ_k p_i,k) over the true and the perturbed options."""

    def __init__(self, normalise: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.normalise = normalise

    def update(self, nll: Tensor, perturbed_nll: Tensor | None = None) -> None:
        """``nll``: ``[items]``; ``perturbed_nll``: ``[items, options]`` (needed to normalise)."""
        p = torch.exp(-nll.float())
        if self.normalise:
            if perturbed_nll is None:
                raise ValueError("a normalised probability needs the perturbed answers' NLLs")
            p = p / (p + torch.exp(-perturbed_nll.float()).sum(-1))
        self.values.append(p)

    def compute(self) -> Tensor:
        return self.per_sample().mean()


class TruthRatio(PerItemMetric):
    """Per item TR_i = P(perturbed) / P(paraphrased) = exp(nll_para,i − mean_k nll_pert,i,k).

    ``kind="forget"``: mean_i min(TR_i, 1/TR_i) (1 = cannot tell true from false, as a model that
    never saw the item); ``kind="utility"``: mean_i max(0, 1 − TR_i) (higher = prefers the truth).
    ``per_sample()`` keeps the raw TR_i for forget quality.
    """

    KINDS = ("forget", "utility")

    def __init__(self, kind: str, **kwargs):
        super().__init__(**kwargs)
        if kind not in self.KINDS:
            raise ValueError(f"truth ratio kind {kind!r}; choose one of {self.KINDS}")
        self.kind = kind

    def update(self, paraphrased_nll: Tensor, perturbed_nll: Tensor) -> None:
        """``paraphrased_nll``: ``[items]``; ``perturbed_nll``: ``[items, options]``."""
        self.values.append(torch.exp(paraphrased_nll.float() - perturbed_nll.float().mean(-1)))

    def compute(self) -> Tensor:
        tr = self.per_sample()
        if self.kind == "forget":
            return torch.minimum(tr, 1 / tr).mean()
        return torch.clamp(1 - tr, min=0).mean()


def forget_quality(truth_ratios: Tensor, retain_model_truth_ratios: Tensor) -> float:
    """p-value of the two-sample KS test between the unlearned model's per-item forget truth
    ratios and the retain model's: high = indistinguishable from a model that never saw them."""
    return float(ks_2samp(truth_ratios.cpu().numpy(), retain_model_truth_ratios.cpu().numpy()).pvalue)


def model_utility(scores: list[float]) -> float:
    """TOFU's model utility: the harmonic mean of the utility sets' probability, ROUGE-L and truth
    ratio scores (9 numbers on TOFU); 0 if any is 0."""
    if not scores:
        raise ValueError("model utility needs at least one score")
    if min(scores) <= 0:
        return 0.0
    return len(scores) / math.fsum(1 / s for s in scores)
