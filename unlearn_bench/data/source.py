"""Where TOFU-format splits come from: a hub id, a local folder of JSON/parquet, or the generator.

All three end in the same ``datasets.Dataset`` per split, so every later stage sees one format.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from unlearn_bench.cache import building, cache_key
from unlearn_bench.data import synthetic
from unlearn_bench.data.validation import STRING, STRINGS, check_rows
from unlearn_bench.errors import ArgumentError, DataError
from unlearn_bench.folders import looks_local

if TYPE_CHECKING:  # datasets takes a second to import: the config checks (and --help) need not wait
    from datasets import Dataset

# A TOFU-format row: question and answer; eval splits add a paraphrase and perturbed answers.
REQUIRED_FIELDS = {"question": STRING, "answer": STRING}
OPTIONAL_FIELDS = {"paraphrased_answer": STRING, "perturbed_answer": STRINGS}


def head(data, max_samples: int | None):
    """The first ``max_samples`` rows of ``data`` (all of them with None): what ``eval.max_samples``
    scores."""
    return data if max_samples is None else data.select(range(min(max_samples, len(data))))


class TofuSource:
    """TOFU-format splits from ``path``: a local folder of ``{split}.json``/``.jsonl``/``.parquet``
    files, or a hub dataset id whose subsets are the split names (``locuslab/TOFU``)."""

    def __init__(self, path: str):
        local = Path(path).expanduser()
        if (local.exists() and not local.is_dir()) or (not local.exists() and looks_local(path)):
            raise ArgumentError("path", str(path), "is not a folder of TOFU-format files (nor a hub id)")
        self.path = str(path)

    @property
    def fingerprint(self) -> dict:
        """What identifies the data for cache keys."""
        return {"path": self.path}

    def load(self, split: str) -> Dataset:
        """A QA split, checked row by row (see :mod:`~unlearn_bench.data.validation`)."""
        data, where = self.read(split)
        return check_rows(data, where, REQUIRED_FIELDS, OPTIONAL_FIELDS)

    def read(self, split: str) -> tuple[Dataset, str]:
        """A split as stored, unchecked, and where it came from (the file, or hub id and split)."""
        from datasets import load_dataset

        folder = Path(self.path).expanduser()
        if folder.is_dir():
            return self._load_local(folder, split)
        try:
            return load_dataset(self.path, name=split, split="train"), f"{self.path}:{split}"
        except Exception as e:  # offline, a private or misspelt id, a missing subset: many exception types
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(
                f"{self.path}:{split} could not be loaded from the hub ({why}); check the id and the "
                "split, or download the files and set data.source.path to their folder"
            ) from None

    def _load_local(self, folder: Path, split: str) -> tuple[Dataset, str]:
        for suffix in (".json", ".jsonl", ".parquet"):
            file = folder / f"{split}{suffix}"
            if file.exists():
                return read_file(file), str(file)
        found = sorted(p.stem for p in folder.iterdir() if p.suffix in (".json", ".jsonl", ".parquet"))
        raise FileNotFoundError(
            f"split {split!r} not found in {folder}: expected {split}.json, .jsonl or .parquet; "
            f"splits there: {found or 'none'}"
        )


def read_file(file: Path) -> Dataset:
    """A local JSON, JSON Lines or parquet file as a Dataset. ``Dataset.from_json``/``from_parquet``
    rather than ``load_dataset("json", ...)``, which first pings the hub to count a download: one
    DNS lookup per file, seconds each where the hub cannot be reached (benchmarks/data_loading.py)."""
    from datasets import Dataset
    from datasets.exceptions import DatasetGenerationError

    builder = "parquet" if file.suffix == ".parquet" else "json"
    if file.stat().st_size == 0:  # datasets would raise a bare StopIteration
        raise DataError(f"{file} is empty")
    try:
        with quiet_datasets():
            return Dataset.from_parquet(str(file)) if builder == "parquet" else Dataset.from_json(str(file))
    except DatasetGenerationError as e:  # e.g. a truncated line: a long traceback naming no file
        raise DataError(f"{file} cannot be read as {builder} ({e.__cause__ or e}); fix or replace the file") from None
    except ValueError as e:  # e.g. "[]": datasets finds no split at all
        raise DataError(f"{file} holds no rows ({e})") from None


@contextmanager
def quiet_datasets():
    """No progress bars for reading and writing small local files (seconds of work, one bar per
    file and per split otherwise); downloads from the hub keep theirs."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


class SyntheticTofu(TofuSource):
    """The embedded dataset: generated once into ``cache_dir`` (keyed by its arguments), then
    loaded like any local TOFU folder."""

    def __init__(self, cache_dir: str, **generator_kwargs):
        self.generator_kwargs = generator_kwargs
        folder = Path(cache_dir) / f"tofu_synth-{cache_key(self.fingerprint)}"
        if not folder.is_dir():
            with building(folder) as tmp, quiet_datasets():
                synthetic.write(tmp, **generator_kwargs)
        super().__init__(str(folder))

    @property
    def fingerprint(self) -> dict:
        return {"synthetic": self.generator_kwargs, "version": synthetic.VERSION}
