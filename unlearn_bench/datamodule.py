"""Batches of named QA splits, drawn side by side (forget with retain, or one fine-tune split)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping

import lightning as L
from datasets import Dataset
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch.utils.data import DataLoader, RandomSampler, Sampler
from torch.utils.data import Dataset as TorchDataset

from unlearn_bench.data.qa import QAEncoder


class SplitSampler(Sampler[dict[str, int]]):
    """Yields ``{split: row index}``, one per sample of an epoch. An epoch is one random pass over
    ``epoch_split``; every other split is drawn afresh to the same length (without replacement
    where it is large enough), except ``paired`` splits, which reuse their partner's indices."""

    def __init__(self, sizes: Mapping[str, int], epoch_split: str, paired: Mapping[str, str]):
        self.sizes, self.epoch_split, self.paired = dict(sizes), epoch_split, dict(paired)

    def __len__(self) -> int:
        return self.sizes[self.epoch_split]

    def __iter__(self) -> Iterator[dict[str, int]]:
        n = len(self)
        drawn = {
            name: list(RandomSampler(range(size), num_samples=n))
            for name, size in self.sizes.items()
            if name not in self.paired
        }
        drawn |= {name: drawn[partner] for name, partner in self.paired.items()}
        for i in range(n):
            yield {name: rows[i] for name, rows in drawn.items()}


class SplitRows(TorchDataset):
    """Encoded rows of several splits, indexed by ``{split: row index}``."""

    def __init__(self, encoded: Mapping[str, list[dict[str, list[int]]]]):
        self.encoded = encoded

    def __getitem__(self, index: dict[str, int]) -> dict[str, dict[str, list[int]]]:
        return {name: self.encoded[name][i] for name, i in index.items()}


class QADataModule(L.LightningDataModule):
    """Yields ``{split: batch}`` dicts, all splits with the same batch size, from one
    :class:`SplitSampler`: a forget epoch sees as many retain samples as forget samples, and a
    split paired with forget (DPO's preferred answers) holds the same questions row for row."""

    def __init__(
        self,
        datasets: Mapping[str, Dataset],
        encoder: QAEncoder,
        batch_size: int,
        epoch_split: str | None = None,
        paired: Mapping[str, str] | None = None,
    ):
        super().__init__()
        if not datasets:
            raise ValueError("QADataModule needs at least one split")
        self.encoder, self.batch_size = encoder, batch_size
        self.epoch_split = epoch_split or next(iter(datasets))
        if self.epoch_split not in datasets:
            raise KeyError(f"epoch_split {self.epoch_split!r} is not among the splits {sorted(datasets)}")
        self.paired = dict(paired or {})
        for name, partner in self.paired.items():
            if partner not in datasets or name not in datasets or len(datasets[name]) != len(datasets[partner]):
                raise ValueError(
                    f"split {name!r} must be paired row for row with {partner!r}; both must exist "
                    "and have the same length"
                )
        self.encoded = {
            name: [encoder.encode(q, a) for q, a in zip(data["question"], data["answer"])]
            for name, data in datasets.items()
        }

    def collate(self, rows: list[dict[str, dict[str, list[int]]]]):
        return {name: self.encoder.collate([row[name] for row in rows]) for name in rows[0]}

    def train_dataloader(self):
        """Batches are made in the training process: rows are tokenized once, up front, and a batch
        is only padded into tensors, so worker processes would add their start-up and nothing else.
        Lightning's advice to add workers (on machines with many cores, a GPU node) is hidden."""
        warnings.filterwarnings(
            "ignore", message="The 'train_dataloader' does not have many workers", category=PossibleUserWarning
        )
        sampler = SplitSampler({name: len(rows) for name, rows in self.encoded.items()}, self.epoch_split, self.paired)
        return DataLoader(SplitRows(self.encoded), batch_size=self.batch_size, sampler=sampler, collate_fn=self.collate)
