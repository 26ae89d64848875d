"""Batches of named QA splits, drawn side by side (forget with retain, or one fine-tune split)."""

from __future__ import annotations

from typing import Mapping

import lightning as L
from datasets import Dataset
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, RandomSampler

from unlearn_bench.data.qa import QAEncoder


class QADataModule(L.LightningDataModule):
    """Yields ``{split: batch}`` dicts. An epoch is one pass over ``datasets[epoch_split]``; every
    other split is sampled afresh each epoch (without replacement where it is large enough) to
    the same length, so a forget epoch sees as many retain samples as forget samples."""

    def __init__(
        self, datasets: Mapping[str, Dataset], encoder: QAEncoder, batch_size: int, epoch_split: str | None = None
    ):
        super().__init__()
        if not datasets:
            raise ValueError("QADataModule needs at least one split")
        self.encoder, self.batch_size = encoder, batch_size
        self.epoch_split = epoch_split or next(iter(datasets))
        if self.epoch_split not in datasets:
            raise KeyError(f"epoch_split {self.epoch_split!r} is not among the splits {sorted(datasets)}")
        self.encoded = {
            name: [encoder.encode(q, a) for q, a in zip(data["question"], data["answer"])]
            for name, data in datasets.items()
        }

    def train_dataloader(self):
        length = len(self.encoded[self.epoch_split])
        loaders = {
            name: DataLoader(
                rows,
                batch_size=self.batch_size,
                sampler=RandomSampler(rows, num_samples=length),
                collate_fn=self.encoder.collate,
            )
            for name, rows in self.encoded.items()
        }
        return CombinedLoader(loaders, mode="min_size")
