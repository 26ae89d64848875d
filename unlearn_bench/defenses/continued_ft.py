"""A schedule-side defense: after unlearning, fine-tune on clean retain data for a few steps."""

from __future__ import annotations

from collections.abc import Callable

from datasets import Dataset
from omegaconf import DictConfig

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.errors import ArgumentError


class RetainFinetune:
    """Minimise NLL(retain) for ``steps`` steps after unlearning: a backdoor-like shortcut learnt
    during unlearning may be overwritten by clean data (a defense's ``after_unlearning``)."""

    def __init__(self, steps: int = 20, batch_size: int = 8, optimizer: Callable | None = None):
        if steps < 1:
            raise ArgumentError("steps", steps, "must be >= 1")
        if batch_size < 1:
            raise ArgumentError("batch_size", batch_size, "must be >= 1")
        if not callable(optimizer):
            raise ArgumentError("optimizer", optimizer, "must be an optimizer factory (_target_ with _partial_: true)")
        self.steps, self.batch_size, self.optimizer = steps, batch_size, optimizer

    def __call__(self, model, encoder: QAEncoder, retain: Dataset, trainer_cfg: DictConfig) -> dict:
        """Fine-tune ``model`` in place; what it did, for metrics.json ``defense``."""
        from unlearn_bench.finetune import fit_nll  # Lightning: imported when training, not by the start-up checks

        steps = fit_nll(
            model, encoder, retain, self.batch_size, self.optimizer, trainer_cfg, max_steps=self.steps, max_epochs=-1
        )
        return {"retain_finetune_steps": steps}
