"""A data-side defense: drop the forget samples that look least like the rest before unlearning."""

from __future__ import annotations

from datasets import Dataset

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.errors import ArgumentError
from unlearn_bench.eval.likelihood import mean_answer_nll


class AnomalyFilter:
    """Drops the fraction ``p`` of forget samples with the highest loss (mean answer NLL) under the
    model about to be unlearned. A rewritten (e.g. template-wrapped) question the model has never
    seen might stand out by its loss; the filter removes it before it can shape the unlearning."""

    def __init__(self, p: float, batch_size: int = 64):
        if not 0 <= p < 1:
            raise ArgumentError("p", p, "must be in [0, 1) (the fraction of forget samples dropped)")
        self.p, self.batch_size = float(p), batch_size

    def __call__(self, forget: Dataset, model, encoder: QAEncoder) -> tuple[Dataset, list[int]]:
        """The kept forget samples (in their order) and the indices of the dropped ones, sorted."""
        losses = mean_answer_nll(model, encoder, forget, self.batch_size, desc="anomaly filter")
        n_drop = round(self.p * len(forget))
        by_loss = sorted(range(len(forget)), key=lambda i: (-losses[i], i))
        dropped = sorted(by_loss[:n_drop])
        kept = sorted(by_loss[n_drop:])
        return forget.select(kept), dropped
