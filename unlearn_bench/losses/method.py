"""A method = a weighted sum of loss terms, sharing one forward pass per split."""

from __future__ import annotations

from typing import Mapping

from torch import Tensor, nn

from unlearn_bench.losses.terms import LossTerm, sequence_nll


class ForwardCache:
    """Runs the model at most once per split of a batch, whatever number of terms read that split."""

    def __init__(self, model: nn.Module, batch: Mapping[str, Mapping[str, Tensor]]):
        self.model, self.batch = model, batch
        self._nll: dict[str, Tensor] = {}

    def sequence_nll(self, split: str) -> Tensor:
        if split not in self._nll:
            if split not in self.batch:
                raise KeyError(f"a loss term reads split {split!r}, but the batch has {sorted(self.batch)}")
            inputs = self.batch[split]
            logits = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
            self._nll[split] = sequence_nll(logits, inputs["labels"])
        return self._nll[split]


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

    def forward(self, model: nn.Module, batch) -> tuple[Tensor, dict[str, Tensor]]:
        cache = ForwardCache(model, batch)
        parts = {name: term(cache) for name, term in self.terms.items()}
        total = sum(self.terms[name].weight * value for name, value in parts.items())
        return total, parts
