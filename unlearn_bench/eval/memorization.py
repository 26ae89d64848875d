"""Privacy and extraction metrics from per-token answer scores, as open unlearning frameworks
report them: min-k% membership inference (and its AUC forget vs holdout), exact memorisation and
extraction strength. Each item is one answer's tokens: their log-probabilities under teacher
forcing, and whether the model's argmax predicted each of them.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc

from unlearn_bench.eval.per_item import PerItemMetric


def _check_tokens(tokens: Tensor) -> None:
    if tokens.numel() == 0:
        raise ValueError("an answer with no tokens has no score; QAEncoder always ends an answer with EOS")


class MinKProbability(PerItemMetric):
    """Min-k% Prob (Shi et al., 2024): per item, the mean log-probability of the ``k`` share of
    answer tokens the model finds least likely (at least one token). Training members score
    higher: a model rarely finds any token of text it memorised very unlikely."""

    def __init__(self, k: float = 0.4, **kwargs):
        super().__init__(**kwargs)
        if not 0 < k <= 1:
            raise ValueError(f"min-k% needs k in (0, 1], got {k}")
        self.k = k

    def update(self, token_logprobs: list[Tensor]) -> None:
        for logprobs in token_logprobs:
            _check_tokens(logprobs)
            n = max(1, int(len(logprobs) * self.k))
            self.values.append(logprobs.float().topk(n, largest=False).values.mean().reshape(1))

    def compute(self) -> Tensor:
        return self.per_sample().mean()


class ExactMemorization(PerItemMetric):
    """EM (Tirumala et al., 2022): per item, the share of answer tokens the teacher-forced argmax
    gets right; the mean over items."""

    def update(self, token_correct: list[Tensor]) -> None:
        for correct in token_correct:
            _check_tokens(correct)
            self.values.append(correct.float().mean().reshape(1))

    def compute(self) -> Tensor:
        return self.per_sample().mean()


class ExtractionStrength(PerItemMetric):
    """ES (Carlini et al., 2021): per item 1 − k*/L, with L answer tokens and k* the shortest
    prefix of the answer after which the teacher-forced argmax reproduces all the rest. 1: the
    question alone extracts the answer; 0: not even the last token (open-unlearning's loop stops
    at k = L − 1 and gives 1/L there); the mean over items."""

    def update(self, token_correct: list[Tensor]) -> None:
        for correct in token_correct:
            _check_tokens(correct)
            wrong = (~correct.bool()).nonzero()
            k = 0 if len(wrong) == 0 else int(wrong[-1]) + 1  # the suffix after the last miss is right
            self.values.append(torch.tensor([1 - k / len(correct)]))

    def compute(self) -> Tensor:
        return self.per_sample().mean()


def membership_auc(member_scores: Tensor, nonmember_scores: Tensor) -> float:
    """AUROC of telling members (forget set: trained on) from non-members (holdout: never seen)
    by a membership score; 1 = fully separable, 0.5 = indistinguishable, as for a retain model."""
    if len(member_scores) == 0 or len(nonmember_scores) == 0:
        raise ValueError("membership AUC needs at least one member and one non-member score")
    scores = torch.cat([member_scores.float(), nonmember_scores.float()])
    labels = torch.cat([torch.ones(len(member_scores)), torch.zeros(len(nonmember_scores))]).long()
    return float(binary_auroc(scores, labels))


def privleak(auc: float, retain_model_auc: float) -> float | None:
    """MUSE's PrivLeak (Shi et al., 2024; open-unlearning's ``privleak``), in percent:
    100 · (AUC_retain − AUC) / (1 − AUC_retain), with AUC the membership AUC above (1 = members
    more likely). MUSE states it on 1 − AUC, hence this form. 0 = leaks as little as a model that
    never saw the forget set; negative = the forget set is still recognisably a member (under-
    unlearning, about −100 before unlearning); positive = over-unlearning. When the retain model's
    AUC is 1: 0 if the AUCs are equal, else undefined (None)."""
    if retain_model_auc == 1:
        return 0.0 if auc == 1 else None
    return (retain_model_auc - auc) / (1 - retain_model_auc) * 100
