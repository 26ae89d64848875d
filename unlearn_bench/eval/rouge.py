"""ROUGE-L recall, the paper's and TOFU's headline score for generated answers."""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.functional.text.rouge import rouge_score
from torchmetrics.utilities import dim_zero_cat


class RougeLRecall(Metric):
    """Mean over samples of ROUGE-L recall = LCS(pred, ref) / |ref| in words, Porter-stemmed as
    TOFU's ``rouge_score`` setup does. ``per_sample()`` keeps each sample's score."""

    full_state_update = False

    def __init__(self, use_stemmer: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.use_stemmer = use_stemmer
        self.add_state("scores", default=[], dist_reduce_fx="cat")

    def update(self, preds: list[str], targets: list[str]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} references")
        recall = [
            rouge_score(p, t, rouge_keys="rougeL", use_stemmer=self.use_stemmer)["rougeL_recall"]
            for p, t in zip(preds, targets)
        ]
        self.scores.append(torch.tensor(recall, dtype=torch.float32, device=self.device))

    def per_sample(self) -> torch.Tensor:
        return dim_zero_cat(self.scores) if self.scores else torch.zeros(0)

    def compute(self) -> torch.Tensor:
        return self.per_sample().mean()
