"""Targeted relearning as a recovery attack (Hu et al., 2024; Lynch et al., 2024): a few steps of
fine-tuning on a small part of the forget set, then the rest of it is scored. Knowledge that
returns from a handful of steps on other facts was hidden, not removed."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable

from unlearn_bench.errors import ArgumentError
from unlearn_bench.recovery.base import Attacked

SOURCES = ("forget", "paraphrased")


class Relearn:
    """Fine-tune a copy of the unlearned model for ``steps`` steps (NLL, ``batch_size`` rows a
    step, epochs over the sample as needed) on ``fraction`` of the forget rows (at least one,
    drawn with ``seed``; or the forget row indices ``rows``), then score the forget rows it did
    not see.

    ``source="paraphrased"`` trains on those rows' paraphrased answers (TOFU's
    ``paraphrased_answer``): related text, not the forget set's own; the scored rows are other
    facts either way."""

    def __init__(
        self,
        steps: int = 20,
        fraction: float = 0.1,
        batch_size: int = 4,
        source: str = "forget",
        seed: int = 0,
        optimizer: Callable | None = None,
        rows: list[int] | None = None,
    ):
        if steps < 1:
            raise ArgumentError("steps", steps, "must be >= 1")
        if not 0 < fraction < 1:
            raise ArgumentError("fraction", fraction, "must be in (0, 1): some forget rows must stay unseen")
        if batch_size < 1:
            raise ArgumentError("batch_size", batch_size, "must be >= 1")
        if source not in SOURCES:
            raise ArgumentError("source", source, f"must be one of {SOURCES}")
        if not callable(optimizer):
            raise ArgumentError("optimizer", optimizer, "must be an optimizer factory (_target_ with _partial_: true)")
        self.steps, self.fraction, self.batch_size = steps, fraction, batch_size
        if rows is not None and (not rows or len(set(rows)) != len(rows) or min(rows) < 0):
            raise ArgumentError("rows", rows, "must be distinct forget row indices (0-based), at least one")
        self.source, self.seed, self.optimizer = source, seed, optimizer
        self.rows = sorted(rows) if rows is not None else None

    def split(self, n: int) -> tuple[list[int], list[int]]:
        """(rows trained on, rows scored) of a forget set of ``n`` rows."""
        if self.rows is not None:
            if max(self.rows) >= n:
                raise ValueError(f"relearning rows {self.rows}: the forget set has {n} rows (0 to {n - 1})")
            if len(self.rows) == n:
                raise ValueError(f"relearning on all {n} forget rows leaves none to score")
            trained = self.rows
        else:
            trained = sorted(random.Random(self.seed).sample(range(n), max(1, math.floor(self.fraction * n))))
        return trained, [i for i in range(n) if i not in set(trained)]

    def __call__(self, model, encoder, forget, trainer_cfg) -> Attacked:
        from unlearn_bench.finetune import fit_nll  # Lightning: imported when training, not by the start-up checks

        trained, scored = self.split(len(forget))
        data = forget.select(trained)
        if self.source == "paraphrased":
            if "paraphrased_answer" not in data.column_names:
                raise ValueError("relearning from paraphrases needs the forget set's paraphrased_answer column")
            data = data.map(lambda row: {"answer": row["paraphrased_answer"]})
        relearned = copy.deepcopy(model)
        steps = fit_nll(
            relearned, encoder, data, self.batch_size, self.optimizer, trainer_cfg, max_steps=self.steps, max_epochs=-1
        )
        return Attacked(relearned, scored=scored, stats={"relearn_rows": trained, "relearn_steps": steps})
