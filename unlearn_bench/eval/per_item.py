"""The base of the eval's torchmetrics: one value per item, kept for per-item analyses (forget
quality's KS test, the membership inference's AUC) and reduced in ``compute``."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


class PerItemMetric(Metric):
    """A metric that keeps one value per item (``per_sample()``) and reduces them in ``compute``.
    Under DDP the eval gathers the samples across ranks before any update (eval/distributed.py),
    so the states are not synced again on compute: that would count each sample once per rank."""

    full_state_update = False

    def __init__(self, **kwargs):
        kwargs.setdefault("sync_on_compute", False)
        super().__init__(**kwargs)
        self.add_state("values", default=[], dist_reduce_fx="cat")

    def per_sample(self) -> Tensor:
        return dim_zero_cat(self.values) if self.values else torch.zeros(0)
