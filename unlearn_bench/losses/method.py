"""A method = a weighted sum of loss terms, sharing one forward pass of the trained model per batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor, nn

from unlearn_bench.answer_logits import answer_forward
from unlearn_bench.data.qa import IGNORE_INDEX
from unlearn_bench.losses.terms import LossTerm, answer_nll, per_sample_sum


class SplitOutput(NamedTuple):
    """A split's rows of a forward pass: logits from prediction position ``offset`` on (the pass's
    first answer-predicting position) and, if requested, every layer's hidden states."""

    logits: Tensor
    hidden_states: tuple[Tensor, ...] | None
    offset: int


class ForwardCache:
    """Runs the trained model once per batch on the rows of its splits together (splits whose
    widths differ too much in passes of their own: :func:`passes`), and the frozen reference once
    per split a term reads it on, whatever number of terms read them.

    One forward of 16 rows instead of two of 8 (GD) halves the per-operation overhead and feeds
    larger matrix products (README, What a cell does). The splits are right-padded to the longest;
    a row's padding comes after its tokens, so in exact arithmetic its outputs are those of its own
    split's pass.

    ``which`` is ``"model"`` (the one being trained) or ``"reference"`` (frozen, no gradient).
    Per-position tensors are over *prediction positions*: position t predicts token t+1, and
    :meth:`answer_mask` marks the positions that predict an answer token. Hidden states are
    requested from the model only if ``hidden_states`` (a term reads them, e.g. RMU's).
    """

    def __init__(
        self,
        model: nn.Module,
        batch: Mapping[str, Mapping[str, Tensor]],
        reference: nn.Module | None = None,
        hidden_states: bool = False,
    ):
        self.models = {"model": model, "reference": reference}
        self.batch, self.hidden_states = batch, hidden_states
        self._outputs: dict[tuple[str, str], SplitOutput] = {}
        self._nll: dict[tuple[str, str], tuple[Tensor, Tensor]] = {}

    def outputs(self, which: str, split: str) -> SplitOutput:
        """The model's output on the split's rows: hidden states (if requested) at every position
        of the pass, logits from its first answer-predicting position on
        (:func:`~unlearn_bench.answer_logits.answer_forward`)."""
        if split not in self.batch:
            raise KeyError(f"a loss term reads split {split!r}, but the batch has {sorted(self.batch)}")
        if (which, split) not in self._outputs:
            model = self.models[which]
            if model is None:
                raise RuntimeError("a loss term needs the reference model, but none was given")
            splits = next(group for group in passes(self.batch) if split in group) if which == "model" else [split]
            with torch.set_grad_enabled(which == "model" and torch.is_grad_enabled()):
                out, offset = answer_forward(model, joined([self.batch[s] for s in splits]), self.hidden_states)
            start = 0
            for name in splits:
                rows = slice(start, start + len(self.batch[name]["input_ids"]))
                hidden = None if out.hidden_states is None else tuple(h[rows] for h in out.hidden_states)
                self._outputs[which, name] = SplitOutput(out.logits[rows], hidden, offset)
                start = rows.stop
        return self._outputs[which, split]

    def answer_mask(self, split: str) -> Tensor:
        """``[batch, seq-1]``: True where the position predicts an answer token."""
        return self.batch[split]["labels"][:, 1:] != IGNORE_INDEX

    def answer_positions(self, split: str) -> tuple[Tensor, Tensor]:
        """(rows, positions) of the prediction positions that predict an answer token."""
        return self.answer_mask(split).nonzero(as_tuple=True)

    def answer_log_probs(self, which: str, split: str) -> Tensor:
        """``[answer tokens, vocab]`` float32 next-token log-probabilities at the answer-predicting
        positions only (prompt and padding positions never get a full-vocabulary float32 copy)."""
        rows, cols = self.answer_positions(split)
        out = self.outputs(which, split)
        return torch.log_softmax(out.logits[rows, cols - out.offset].float(), dim=-1)

    def per_sample_mean(self, values: Tensor, split: str) -> Tensor:
        """``[batch]`` mean over each sample's answer tokens of per-answer-token ``values``."""
        mask = self.answer_mask(split)
        return per_sample_sum(values, *self.answer_positions(split), mask.shape) / mask.sum(1).clamp(min=1)

    def hidden(self, which: str, split: str, layer: int) -> Tensor:
        """``[batch, seq-1, hidden]`` output of decoder layer ``layer`` (0 = embeddings)."""
        width = self.batch[split]["input_ids"].shape[1]  # the split's own; the pass may be padded wider
        return self.outputs(which, split).hidden_states[layer][:, : width - 1].float()

    def greedy_agreement(self, split: str) -> Tensor:
        """Share of the split's answer tokens that are the trained model's most likely next token,
        teacher-forced: a by-product of the forward pass (no gradient), and the cheap signal of
        how much of the split the model still reproduces."""
        rows, cols = self.answer_positions(split)
        with torch.no_grad():
            out = self.outputs("model", split)
            predicted = out.logits[rows, cols - out.offset].argmax(-1)
            return (predicted == self.batch[split]["labels"][rows, cols + 1]).float().mean()

    def _answer_nll(self, which: str, split: str) -> tuple[Tensor, Tensor]:
        if (which, split) not in self._nll:
            out = self.outputs(which, split)
            self._nll[which, split] = answer_nll(out.logits, self.batch[split]["labels"][:, out.offset :])
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


PADDING_TOLERANCE = 0.05  # a joined pass may hold this share more positions than separate passes


def passes(batch: Mapping[str, Mapping[str, Tensor]]) -> list[list[str]]:
    """The splits the trained model runs together, one forward per group: widest first, a split
    joins the group before it while padding the group to one width adds at most
    ``PADDING_TOLERANCE`` of the positions separate passes would hold. Where a step is
    compute-bound (a large model on a GPU) padding is paid in full and the overhead saved is small:
    SU's scope rows (two questions) are wider than forget and retain rows and run apart."""
    shape = {split: tuple(batch[split]["input_ids"].shape) for split in batch}
    groups: list[list[str]] = []
    for split in sorted(batch, key=lambda s: -shape[s][1]):
        if groups:
            group = [*groups[-1], split]
            rows, width = sum(shape[s][0] for s in group), shape[group[0]][1]
            if rows * width <= (1 + PADDING_TOLERANCE) * sum(shape[s][0] * shape[s][1] for s in group):
                groups[-1] = group
                continue
        groups.append([split])
    return groups


def joined(batches: list[Mapping[str, Tensor]]) -> Mapping[str, Tensor]:
    """Right-padded QA batches stacked row-wise, right-padded to the widest (masked out, no label);
    one batch is returned as it is."""
    if len(batches) == 1:
        return batches[0]
    width = max(b["input_ids"].shape[1] for b in batches)
    fills = {"input_ids": 0, "attention_mask": 0, "labels": IGNORE_INDEX}
    pad = lambda t, fill: nn.functional.pad(t, (0, width - t.shape[1]), value=fill)
    return {key: torch.cat([pad(b[key], fill) for b in batches]) for key, fill in fills.items()}


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
        return set().union(*(term.splits for term in self.terms.values()))

    @property
    def paired(self) -> dict[str, str]:
        """Splits whose rows must be batched with the same indices as another split (DPO's
        preferred answers with their forget rows)."""
        return {k: v for term in self.terms.values() for k, v in term.paired.items()}

    @property
    def needs_reference(self) -> bool:
        return any(term.needs_reference for term in self.terms.values())

    @property
    def needs_hidden_states(self) -> bool:
        return any(term.needs_hidden_states for term in self.terms.values())

    def forward(self, model: nn.Module, batch, reference: nn.Module | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        return self.on(ForwardCache(model, batch, reference, self.needs_hidden_states))

    def on(self, cache: ForwardCache) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss on a batch's forward passes, for a caller that reads them too."""
        parts = {name: term(cache) for name, term in self.terms.items()}
        total = sum(self.terms[name].weight * value for name, value in parts.items())
        return total, parts
