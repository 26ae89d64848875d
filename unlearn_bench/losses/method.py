"""A method = a weighted sum of loss terms, sharing one forward pass per split."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from unlearn_bench.losses.terms import LossTerm, answer_nll


class ForwardCache:
    """Runs each model at most once per split of a batch, whatever number of terms read it."""

    def __init__(self, model: nn.Module, batch: Mapping[str, Mapping[str, Tensor]],
                 reference: nn.Module | None = None):
        self.models = {"model": model, "reference": reference}
        self.batch = batch
        self._nll: dict[tuple[str, str], tuple[Tensor, Tensor]] = {}

    def _answer_nll(self, which: str, split: str) -> tuple[Tensor, Tensor]:
        if (which, split) not in self._nll:
            if split not in self.batch:
                raise KeyError(f"a loss term reads split {split!r}, but the batch has {sorted(self.batch)}")
            model = self.models[which]
            if model is None:
                raise RuntimeError("a loss term needs the reference model, but none was given")
            inputs = self.batch[split]
            with torch.set_grad_enabled(which == "model" and torch.is_grad_enabled()):
                logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
            self._nll[which, split] = answer_nll(logits, inputs["labels"])
        return self._nll[which, split]

    def sequence_nll(self, split: str) -> Tensor:
        """Per-sample mean answer-token NLL under the trained model."""
        total, count = self._answer_nll("model", split)
        return total / count.clamp(min=1)

    def nll_sum(self, split: str) -> Tensor:
        """Per-sample summed answer-token NLL under the trained model."""
        return self._answer_nll("model", split)[0]

    def reference_nll_sum(self, split: str) -> Tensor:
        """The same under the frozen reference model (no gradient)."""
        return self._answer_nll("reference", split)[0]


class ComposedLoss(nn.Module):
    """L = Σ_k w_k · term_k(batch). Returns the total and each term's unweighted value for logging."""

    def __init__(self, terms: Mapping[str, LossTerm]):
        super().__init__()
        if not terms:
            raise ValueError("a method needs at least one loss term")
        self.terms = nn.ModuleDict(dict(terms))

    def add(self, name: str, term: LossTerm) -> None:
        """Add a term (a defense's, e.g. SU's scope term) to the method's terms."""
        if name in self.terms:
            raise ValueError(f"the method already has a term named {name!r}")
        self.terms[name] = term

    @property
    def splits(self) -> set[str]:
        return {term.split for term in self.terms.values()}

    @property
    def needs_reference(self) -> bool:
        return any(term.needs_reference for term in self.terms.values())

    def forward(self, model: nn.Module, batch, reference: nn.Module | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        cache = ForwardCache(model, batch, reference)
        parts = {name: term(cache) for name, term in self.terms.items()}
        total = sum(self.terms[name].weight * value for name, value in parts.items())
        return total, parts
