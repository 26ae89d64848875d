"""Representation Misdirection for Unlearning (RMU, Li et al. 2024): terms on the activations of
one decoder layer instead of on the output distribution."""

from __future__ import annotations

import torch
from torch import Tensor

from unlearn_bench.errors import ArgumentError
from unlearn_bench.losses.terms import LossTerm


def _masked_mse(hidden: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """mean_i (1/|y_i|) Σ_t mean_j (h_i,t,j − target_i,t,j)², over answer-predicting positions t."""
    per_position = ((hidden - target) ** 2).mean(-1)
    return ((per_position * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


class _LayerTerm(LossTerm):
    needs_hidden_states = True

    def __init__(self, split: str, layer: int, weight: float = 1.0):
        super().__init__(split, weight)
        if layer < 1:
            raise ArgumentError("layer", layer, "must be >= 1 (RMU's decoder layer; 0 is the embeddings)")
        self.layer = int(layer)

    def check_depth(self, layers: int) -> None:
        if self.layer > layers:
            raise ArgumentError("layer", self.layer, f"is past the model's last decoder layer: use 1 to {layers}")

    def _hidden(self, cache, which: str) -> Tensor:
        states = cache.outputs(which, self.split).hidden_states
        if self.layer >= len(states):
            raise ValueError(f"RMU's layer is {self.layer}, but the model has {len(states) - 1} decoder layers")
        return cache.hidden(which, self.split, self.layer)


class RMUMisdirect(_LayerTerm):
    """RMU's forget term: drive layer-ℓ activations on the split to a fixed random control vector,

    L = mean_i (1/|y_i|) Σ_t mean_j (h_ℓ(x_i)_t,j − c·u_j)²,

    u a random unit vector (entries uniform in [0, 1), normalised; fixed by ``seed``) and c the
    steering coefficient, which should exceed the layer's typical activation norm.
    """

    def __init__(self, split: str, layer: int, steering_coeff: float, seed: int = 0, weight: float = 1.0):
        super().__init__(split, layer, weight)
        if steering_coeff <= 0:
            raise ArgumentError("steering_coeff", steering_coeff, "must be > 0")
        self.steering_coeff, self.seed = float(steering_coeff), int(seed)
        self._control: Tensor | None = None

    def control_vector(self, size: int, device) -> Tensor:
        if self._control is None or self._control.shape[-1] != size:
            u = torch.rand(size, generator=torch.Generator().manual_seed(self.seed))
            self._control = self.steering_coeff * u / u.norm()
        return self._control.to(device)

    def forward(self, cache) -> Tensor:
        hidden = self._hidden(cache, "model")
        control = self.control_vector(hidden.shape[-1], hidden.device).expand_as(hidden)
        return _masked_mse(hidden, control, cache.answer_mask(self.split))


class RMURetain(_LayerTerm):
    """RMU's retain term: keep layer-ℓ activations on the split where the frozen reference has them,

    L = mean_i (1/|y_i|) Σ_t mean_j (h_ℓ,θ(x_i)_t,j − h_ℓ,ref(x_i)_t,j)².
    """

    needs_reference = True

    def forward(self, cache) -> Tensor:
        return _masked_mse(
            self._hidden(cache, "model"), self._hidden(cache, "reference"), cache.answer_mask(self.split)
        )
