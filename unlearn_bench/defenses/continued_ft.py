"""A schedule-side defense: after unlearning, fine-tune on clean retain data for a few steps."""

from __future__ import annotations

from datasets import Dataset
from hydra.utils import instantiate
from omegaconf import DictConfig

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.finetune import fit_nll


def finetune_on_retain(
    model, encoder: QAEncoder, retain: Dataset, settings: DictConfig, trainer_cfg: DictConfig
) -> int:
    """Minimise NLL(retain) for ``settings.steps`` steps (``settings``: ``defense.retain_finetune``);
    a backdoor-like shortcut learnt during unlearning may be overwritten by clean data. Returns the
    number of steps taken."""
    return fit_nll(
        model,
        encoder,
        retain,
        settings.batch_size,
        instantiate(settings.optimizer),
        trainer_cfg,
        max_steps=settings.steps,
        max_epochs=-1,
    )
