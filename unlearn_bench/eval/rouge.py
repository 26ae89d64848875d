"""ROUGE-L recall, the paper's and TOFU's headline score for generated answers."""

from __future__ import annotations

import functools
import re

import torch
from torchmetrics.functional.text.rouge import rouge_score

from unlearn_bench.eval.per_item import PerItemMetric


@functools.cache
def _porter():
    from nltk.stem.porter import PorterStemmer  # imported with the first score: nltk takes a second

    return PorterStemmer()


@functools.lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    return _porter().stem(word)


def stemmed_words(text: str) -> list[str]:
    """torchmetrics' ``use_stemmer=True`` tokenizer (whitespace split of the normalised text, Porter
    stems of words over 3 characters) with each word's stem computed once per process: stemming
    was most of a score's cost, and the same answers are scored again at every stop check."""
    return [_stem(w) if len(w) > 3 else w for w in re.split(r"\s+", text)]


class RougeLRecall(PerItemMetric):
    """Mean over samples of ROUGE-L recall = LCS(pred, ref) / |ref| in words, Porter-stemmed as
    TOFU's ``rouge_score`` setup does. ``per_sample()`` keeps each sample's score."""

    def __init__(self, use_stemmer: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = stemmed_words if use_stemmer else None

    def update(self, preds: list[str], targets: list[str]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} references")
        recall = [
            rouge_score(p, t, rouge_keys="rougeL", tokenizer=self.tokenizer)["rougeL_recall"]
            for p, t in zip(preds, targets)
        ]
        self.values.append(torch.tensor(recall, dtype=torch.float32, device=self.device))

    def compute(self) -> torch.Tensor:
        return self.per_sample().mean()
