"""WMDP-style multiple-choice sets: ``question``, ``choices`` (a list of strings) and ``answer``
(the index of the right choice), from the data source's own splits, a local folder or file
(JSON, JSON Lines or parquet) or a hub dataset (``cais/wmdp`` with subset ``wmdp-bio``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from datasets import Dataset, load_dataset

from unlearn_bench.data.source import TofuSource, read_file
from unlearn_bench.data.validation import INDEX, SOME_STRINGS, STRING, check_rows
from unlearn_bench.errors import DataError
from unlearn_bench.folders import looks_local


def load_multiple_choice(spec: str | Mapping, source: TofuSource) -> Dataset:
    """``spec``: a split name of ``source``, or ``{path, split, subset}`` of its own: ``path`` a
    local folder (``{split}.json``/``.jsonl``/``.parquet``), a local file, or a hub id."""
    if isinstance(spec, str):
        return validated(*source.read(spec))
    unknown = set(spec) - {"path", "split", "subset"}
    if unknown or "path" not in spec:
        raise ValueError(f"a multiple-choice set needs {{path, split, subset}}; got keys {sorted(spec)}")
    path, split, subset = str(spec["path"]), spec.get("split") or "test", spec.get("subset")
    local = Path(path).expanduser()
    if local.is_file():
        data, where = read_file(local), str(local)
    elif local.is_dir():
        data, where = TofuSource(str(local)).read(split)
    elif looks_local(path):
        raise FileNotFoundError(f"multiple-choice set {path!r} does not exist")
    else:
        data, where = load_dataset(path, name=subset, split=split), f"{path}:{subset}:{split}"
    return validated(data, where)


def validated(data: Dataset, where: str) -> Dataset:
    """``data`` if every row has a question, at least one string choice and an answer index in
    range; otherwise a DataError naming the set, the row and the field."""
    check_rows(data, where, {"question": STRING, "choices": SOME_STRINGS, "answer": INDEX})
    for i, (choices, answer) in enumerate(zip(data["choices"], data["answer"])):
        if not 0 <= answer < len(choices):
            raise DataError(
                f"{where}, row {i}, field 'answer': expected a choice index in [0, {len(choices)}), got {answer!r}"
            )
    return data
