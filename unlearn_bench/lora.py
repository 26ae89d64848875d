"""LoRA adapters through peft, and the frozen reference model they give for free: the same
network with its adapters switched off is exactly the model before this training stage."""

from __future__ import annotations

import copy

from torch import nn


def uses_lora(lora_cfg, stage: str) -> bool:
    """Whether the ``stage`` (``finetune`` or ``unlearn``) trains LoRA adapters."""
    return bool(lora_cfg.enabled) and stage in lora_cfg.get("stages", ("finetune", "unlearn"))


def with_lora(model: nn.Module, lora_cfg, stage: str) -> nn.Module:
    """``model`` with fresh LoRA adapters (only they train) if the config enables them for
    ``stage``, else as is."""
    if not uses_lora(lora_cfg, stage):
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ImportError('model.lora.enabled=true needs peft: pip install -e ".[lora]"') from None

    targets = lora_cfg.target_modules
    config = LoraConfig(
        r=lora_cfg.r,
        lora_alpha=lora_cfg.alpha,
        lora_dropout=lora_cfg.dropout,
        task_type="CAUSAL_LM",
        target_modules=targets if isinstance(targets, str) else list(targets),
    )
    new_name = hasattr(model, "is_activation_checkpointing")  # transformers 5; 4.x has the old name
    if getattr(model, "is_activation_checkpointing" if new_name else "is_gradient_checkpointing", False):
        model.enable_input_require_grads()  # frozen embeddings would otherwise cut the checkpointed graph
    return get_peft_model(model, config)


def merged(model: nn.Module) -> nn.Module:
    """A plain transformers model: adapters folded into the weights (what the fine-tune cache saves)."""
    return model.merge_and_unload() if _is_peft(model) else model


class AdaptersOff(nn.Module):
    """The reference model of a LoRA model: its forward runs with the adapters disabled. It holds
    the model outside its module tree, so it adds no parameters and toggling its mode leaves the
    trainee alone."""

    def __init__(self, peft_model: nn.Module):
        super().__init__()
        self._model = [peft_model]  # a list: not registered as a submodule

    def forward(self, *args, **kwargs):
        model, was_training = self._model[0], self._model[0].training
        model.eval()  # as the copied reference would be: no dropout
        try:
            with model.disable_adapter():
                return model(*args, **kwargs)
        finally:
            model.train(was_training)


def frozen_reference(model: nn.Module) -> nn.Module:
    """The model before training, frozen: the adapters-off view of a LoRA model (shared weights),
    otherwise a copy."""
    if _is_peft(model):
        return AdaptersOff(model)
    return copy.deepcopy(model).eval().requires_grad_(False)


def _is_peft(model: nn.Module) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)
