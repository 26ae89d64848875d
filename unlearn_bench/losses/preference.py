"""Preference-style forget terms: the forget answer is the dispreferred response.

log π(y|x) is the summed answer log-likelihood, -NLL_sum; π_ref the frozen reference model.
"""

from __future__ import annotations

from torch import Tensor, nn

from unlearn_bench.errors import ArgumentError
from unlearn_bench.losses.terms import LossTerm


def _check_beta(name: str, beta: float) -> float:
    if beta <= 0:
        raise ArgumentError("beta", beta, f"(of {name}) must be > 0")
    return float(beta)


class NPO(LossTerm):
    """Negative preference optimisation (Zhang et al. 2024) on the split:

    L = (2/β) · mean_i log(1 + (π_θ(y_i|x_i) / π_ref(y_i|x_i))^β)
      = (2/β) · mean_i softplus(β · (NLL_ref,i − NLL_θ,i)),

    NLL the summed answer-token NLL. Bounded below by 0, unlike gradient ascent, so forgetting
    slows down instead of running away.
    """

    needs_reference = True

    def __init__(self, split: str, beta: float = 0.1, weight: float = 1.0):
        super().__init__(split, weight)
        self.beta = _check_beta("NPO", beta)

    def forward(self, cache) -> Tensor:
        log_ratio = cache.reference_nll_sum(self.split) - cache.nll_sum(self.split)
        return 2 / self.beta * nn.functional.softplus(self.beta * log_ratio).mean()


class SimNPO(LossTerm):
    """SimNPO (Fan et al. 2024): NPO without the reference model, length-normalised, with a margin γ:

    L = -(2/β) · mean_i log σ(-(β/|y_i|) · log π_θ(y_i|x_i) − γ)
      = (2/β) · mean_i softplus(γ − β · nll_i),

    nll_i the mean answer-token NLL.
    """

    def __init__(self, split: str, beta: float = 2.5, gamma: float = 0.0, weight: float = 1.0):
        super().__init__(split, weight)
        self.beta, self.gamma = _check_beta("SimNPO", beta), float(gamma)

    def forward(self, cache) -> Tensor:
        return 2 / self.beta * nn.functional.softplus(self.gamma - self.beta * cache.sequence_nll(self.split)).mean()


class DPO(LossTerm):
    """Direct preference optimisation towards ``preferred`` answers and away from the split's
    (IdkDPO: an "I don't know" answer preferred over the true forget answer of the same question):

    L = -(2/β) · mean_i log σ(β · [(log π_θ − log π_ref)(y_w,i|x_i) − (log π_θ − log π_ref)(y_l,i|x_i)]),

    y_l from ``split``, y_w from ``preferred``; the two splits are batched row-aligned.
    """

    needs_reference = True

    def __init__(self, split: str, preferred: str, beta: float = 0.1, weight: float = 1.0):
        super().__init__(split, weight)
        self.preferred, self.beta = preferred, _check_beta("DPO", beta)

    @property
    def splits(self) -> set[str]:
        return {self.split, self.preferred}

    @property
    def paired(self) -> dict[str, str]:
        return {self.preferred: self.split}

    def forward(self, cache) -> Tensor:
        def log_ratio(split: str) -> Tensor:
            return cache.reference_nll_sum(split) - cache.nll_sum(split)

        margin = log_ratio(self.preferred) - log_ratio(self.split)
        return 2 / self.beta * nn.functional.softplus(-self.beta * margin).mean()
