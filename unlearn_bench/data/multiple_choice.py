"""WMDP-style multiple-choice sets: ``question``, ``choices`` (a list of strings) and ``answer``
(the index of the right choice), from the data source's own splits, a local folder or file
(JSON, JSON Lines or parquet) or a hub dataset (``cais/wmdp`` with subset ``wmdp-bio``)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from datasets import Dataset, load_dataset

from unlearn_bench.data.source import TofuSource


def load_multiple_choice(spec: str | Mapping, source: TofuSource) -> Dataset:
    """``spec``: a split name of ``source``, or ``{path, split, subset}`` of its own: ``path`` a
    local folder (``{split}.json``/``.jsonl``/``.parquet``), a local file, or a hub id."""
    if isinstance(spec, str):
        return validated(source.load(spec), f"{source.path}:{spec}")
    unknown = set(spec) - {"path", "split", "subset"}
    if unknown or "path" not in spec:
        raise ValueError(f"a multiple-choice set needs {{path, split, subset}}; got keys {sorted(spec)}")
    path, split, subset = str(spec["path"]), spec.get("split") or "test", spec.get("subset")
    local = Path(path).expanduser()
    if local.is_file():
        builder = "parquet" if local.suffix == ".parquet" else "json"
        data, where = load_dataset(builder, data_files=str(local), split="train"), str(local)
    elif local.is_dir():
        data, where = TofuSource(str(local)).load(split), f"{local}:{split}"
    elif path.startswith((".", "/", "~")):
        raise FileNotFoundError(f"multiple-choice set {path!r} does not exist")
    else:
        data, where = load_dataset(path, name=subset, split=split), f"{path}:{subset}:{split}"
    return validated(data, where)


def validated(data: Dataset, where: str) -> Dataset:
    """``data`` if every row has a question, at least one string choice and an answer index in
    range; otherwise a ValueError naming the set, the row and the field."""
    missing = [f for f in ("question", "choices", "answer") if f not in data.column_names]
    if missing:
        raise ValueError(f"{where}: multiple-choice rows need the field(s) {missing}; found {data.column_names}")
    if len(data) == 0:
        raise ValueError(f"{where} is empty")
    for i, row in enumerate(data):
        choices, answer = row["choices"], row["answer"]
        if not isinstance(row["question"], str):
            raise ValueError(f"{where}, row {i}, field 'question': expected a string, got {row['question']!r}")
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            raise ValueError(f"{where}, row {i}, field 'choices': expected a non-empty list of strings, "
                             f"got {choices!r}")
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
            raise ValueError(f"{where}, row {i}, field 'answer': expected a choice index in [0, {len(choices)}), "
                             f"got {answer!r}")
    return data
