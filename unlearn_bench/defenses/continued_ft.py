"""A schedule-side defense: after unlearning, fine-tune on clean retain data for a few steps."""

from __future__ import annotations

from datasets import Dataset
from hydra.utils import instantiate
from omegaconf import DictConfig

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.datamodule import QADataModule
from unlearn_bench.losses import NLL, ComposedLoss
from unlearn_bench.module import ComposedLossModule


def finetune_on_retain(
    model, encoder: QAEncoder, retain: Dataset, settings: DictConfig, trainer_cfg: DictConfig
) -> int:
    """Minimise NLL(retain) for ``settings.steps`` steps (``settings``: ``defense.retain_finetune``);
    a backdoor-like shortcut learnt during unlearning may be overwritten by clean data. Returns the
    number of steps taken."""
    module = ComposedLossModule(model, ComposedLoss({"retain": NLL("retain")}), instantiate(settings.optimizer))
    trainer = instantiate(trainer_cfg, max_steps=settings.steps, max_epochs=-1, logger=False,
                          enable_checkpointing=False)
    trainer.fit(module, QADataModule({"retain": retain}, encoder, settings.batch_size))
    return trainer.global_step
