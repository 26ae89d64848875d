"""ROUGE-L recall, the paper's and TOFU's headline score for generated answers."""

from __future__ import annotations

import torch
from torchmetrics.functional.text.rouge import rouge_score

from unlearn_bench.eval.per_item import PerItemMetric


class RougeLRecall(PerItemMetric):
    """Mean over samples of ROUGE-L recall = LCS(pred, ref) / |ref| in words, Porter-stemmed as
    TOFU's ``rouge_score`` setup does. ``per_sample()`` keeps each sample's score."""

    def __init__(self, use_stemmer: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.use_stemmer = use_stemmer

    def update(self, preds: list[str], targets: list[str]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} references")
        recall = [
            rouge_score(p, t, rouge_keys="rougeL", use_stemmer=self.use_stemmer)["rougeL_recall"]
            for p, t in zip(preds, targets)
        ]
        self.values.append(torch.tensor(recall, dtype=torch.float32, device=self.device))

    def compute(self) -> torch.Tensor:
        return self.per_sample().mean()
