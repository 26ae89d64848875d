"""The LightningModule of both stages: a causal LM trained on a composed loss.

Fine-tuning is ``NLL(train)``; unlearning is a method's terms over ``forget``/``retain`` batches.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from transformers import get_scheduler

from unlearn_bench.lora import frozen_reference
from unlearn_bench.losses import ComposedLoss, ForwardCache


class ComposedLossModule(L.LightningModule):
    """Wraps a transformers causal LM; each step minimises ``loss(model, batch)``.

    ``batch`` maps split names to padded QA batches (see :class:`~unlearn_bench.datamodule.QADataModule`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss: ComposedLoss,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: str = "constant",
        warmup_ratio: float = 0.0,
        agreement: bool = False,
    ):
        """``agreement``: each step also returns, per split, the share of answer tokens the model
        still predicts (what :class:`~unlearn_bench.callbacks.StopAtUnlearn` follows)."""
        super().__init__()
        self.model, self.loss, self.optimizer_factory = model, loss, optimizer
        self.model.train()  # from_pretrained returns eval mode (dropout off); train it as a trainee
        # The model before this stage, frozen, shared by every term that reads it.
        self.reference = frozen_reference(model) if loss.needs_reference else None
        self.scheduler, self.warmup_ratio, self.agreement = scheduler, warmup_ratio, agreement

    def train(self, mode: bool = True):
        super().train(mode)
        if self.reference is not None:
            self.reference.eval()  # frozen: never in train mode, whatever Lightning toggles
        return self

    def on_fit_start(self):
        """Lightning warns when fit starts with modules in eval mode; the frozen reference is in eval
        mode on purpose, so the warning is hidden when its modules are the only ones (for exactly
        their count: any other module left in eval mode still warns)."""
        in_eval = [name for name, module in self.named_modules() if not module.training]
        if in_eval and all(name == "reference" or name.startswith("reference.") for name in in_eval):
            message = re.escape(f"Found {len(in_eval)} module(s) in eval mode at the start of training")
            warnings.filterwarnings("ignore", message=message, category=PossibleUserWarning)

    def training_step(self, batch, batch_idx):
        cache = ForwardCache(self.model, batch, self.reference, self.loss.needs_hidden_states)
        total, parts = self.loss.on(cache)
        size = len(next(iter(batch.values()))["input_ids"])
        self.log("train/loss", total, prog_bar=True, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=size)
        if not self.agreement:
            return total
        return {"loss": total, "agreement": {split: cache.greedy_agreement(split) for split in batch}}

    def configure_optimizers(self):
        optimizer = self.optimizer_factory([p for p in self.model.parameters() if p.requires_grad])
        steps = int(self.trainer.estimated_stepping_batches)
        scheduler = get_scheduler(self.scheduler, optimizer, int(self.warmup_ratio * steps), steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
