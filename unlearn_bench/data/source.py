"""Where TOFU-format splits come from: a hub id, a local folder of JSON/parquet, or the generator.

All three end in the same ``datasets.Dataset`` per split, so every later stage sees one format.
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, load_dataset

from unlearn_bench.cache import building, cache_key
from unlearn_bench.data import synthetic

REQUIRED_FIELDS = ("question", "answer")


class TofuSource:
    """TOFU-format splits from ``path``: a local folder of ``{split}.json``/``.jsonl``/``.parquet``
    files, or a hub dataset id whose subsets are the split names (``locuslab/TOFU``)."""

    def __init__(self, path: str):
        self.path = str(path)

    @property
    def fingerprint(self) -> dict:
        """What identifies the data for cache keys."""
        return {"path": self.path}

    def load(self, split: str) -> Dataset:
        folder = Path(self.path).expanduser()
        if folder.is_dir():
            data = self._load_local(folder, split)
        elif folder.exists() or self.path.startswith((".", "/", "~")):
            raise FileNotFoundError(f"data path {self.path!r} is not a folder of TOFU-format files")
        else:
            data = load_dataset(self.path, name=split, split="train")
        return _validated(data, f"{self.path}:{split}")

    def _load_local(self, folder: Path, split: str) -> Dataset:
        for suffix, builder in ((".json", "json"), (".jsonl", "json"), (".parquet", "parquet")):
            file = folder / f"{split}{suffix}"
            if file.exists():
                if file.stat().st_size == 0:  # datasets would raise a bare StopIteration
                    raise ValueError(f"{file} is empty")
                return load_dataset(builder, data_files=str(file), split="train")
        found = sorted(p.stem for p in folder.iterdir() if p.suffix in (".json", ".jsonl", ".parquet"))
        raise FileNotFoundError(
            f"split {split!r} not found in {folder}: expected {split}.json, .jsonl or .parquet; "
            f"splits there: {found or 'none'}"
        )


def _validated(data: Dataset, where: str) -> Dataset:
    if len(data) == 0:
        raise ValueError(f"{where} is empty")
    missing = [f for f in REQUIRED_FIELDS if f not in data.column_names]
    if missing:
        raise ValueError(f"{where} lacks the field(s) {missing}; it has {data.column_names}")
    return data


class SyntheticTofu(TofuSource):
    """The embedded dataset: generated once into ``cache_dir`` (keyed by its arguments), then
    loaded like any local TOFU folder."""

    def __init__(self, cache_dir: str, **generator_kwargs):
        self.generator_kwargs = generator_kwargs
        folder = Path(cache_dir) / f"tofu_synth-{cache_key(self.fingerprint)}"
        if not folder.is_dir():
            with building(folder) as tmp:
                synthetic.write(tmp, **generator_kwargs)
        super().__init__(str(folder))

    @property
    def fingerprint(self) -> dict:
        return {"synthetic": self.generator_kwargs, "version": synthetic.VERSION}
