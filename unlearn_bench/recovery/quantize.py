"""Weight quantisation as a recovery attack (Zhang et al., ICLR 2025: "Catastrophic failure of LLM
unlearning via quantization"): an unlearning update smaller than the quantisation step rounds
back to the weights the model had before unlearning."""

from __future__ import annotations

import copy

import torch

from unlearn_bench.errors import ArgumentError
from unlearn_bench.recovery.base import Attacked


@torch.no_grad()
def fake_quantize(weight: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """Round-to-nearest asymmetric quantisation of each row's groups of ``group_size`` input
    weights (``-1``: the whole row) to ``2**bits`` levels between the group's min and max, returned
    dequantised in the weight's dtype: every weight moves by at most half a step, (max − min) /
    (2**bits − 1) / 2, and a group has at most ``2**bits`` distinct values."""
    rows, cols = weight.shape
    size = cols if group_size == -1 else group_size
    if cols % size:
        raise ArgumentError("group_size", group_size, f"must divide the layer's input size {cols} (or be -1)")
    groups = weight.float().reshape(rows, cols // size, size)
    low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
    scale = ((high - low) / (2**bits - 1)).clamp(min=torch.finfo(torch.float32).tiny)
    levels = torch.round((groups - low) / scale).clamp(0, 2**bits - 1)
    return (levels * scale + low).reshape(rows, cols).to(weight.dtype)


class Quantize:
    """A copy of the unlearned model with every linear layer's weight fake-quantised (round to
    nearest, ``bits`` per weight, one scale and offset per ``group_size`` inputs), except the
    layers named in ``skip`` (the output layer, as GPTQ and AWQ leave it). A LoRA model is merged
    first: what would be deployed quantised is the merged network."""

    def __init__(self, bits: int = 4, group_size: int = 128, skip: tuple[str, ...] = ("lm_head",)):
        if not 2 <= bits <= 8:
            raise ArgumentError("bits", bits, "must be in [2, 8]")
        if group_size != -1 and group_size < 2:
            raise ArgumentError("group_size", group_size, "must be >= 2, or -1 for one group per row")
        self.bits, self.group_size, self.skip = bits, group_size, tuple(skip)

    @torch.no_grad()
    def __call__(self, model, encoder, forget, trainer_cfg) -> Attacked:
        quantized = copy.deepcopy(model)
        if hasattr(quantized, "merge_and_unload"):  # peft
            quantized = quantized.merge_and_unload()
        layers = 0
        for name, module in quantized.named_modules():
            if isinstance(module, torch.nn.Linear) and name.split(".")[-1] not in self.skip:
                size = min(self.group_size, module.in_features) if self.group_size != -1 else -1
                module.weight.copy_(fake_quantize(module.weight, self.bits, size))
                layers += 1
        return Attacked(quantized, stats={"quantized_layers": layers})
