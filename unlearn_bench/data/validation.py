"""Row-level checks of a loaded split: a malformed file (a missing field, an empty split, a wrong
type) fails at load time with a message naming the file, the row and the field, instead of as an
obscure error deep in training or eval."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from unlearn_bench.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

Kind = tuple[str, Callable[[object], bool]]  # (what is expected, in words; the check)

STRING: Kind = ("a string", lambda v: isinstance(v, str))
STRINGS: Kind = ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
SOME_STRINGS: Kind = ("a non-empty list of strings", lambda v: STRINGS[1](v) and len(v) > 0)
INDEX: Kind = ("an integer index", lambda v: isinstance(v, int) and not isinstance(v, bool))


def check_rows(
    data: Dataset, where: str, required: Mapping[str, Kind], optional: Mapping[str, Kind] | None = None
) -> Dataset:
    """``data`` if it has rows, every ``required`` field, and every value of the ``required`` and
    present ``optional`` fields of the expected kind; otherwise a DataError naming ``where``
    (the file or split), the row and the field."""
    missing = [f for f in required if f not in data.column_names]
    if missing:
        raise DataError(f"{where}: rows need the field(s) {missing}; the file has {data.column_names}")
    if len(data) == 0:
        raise DataError(f"{where} is empty: it holds no rows")
    fields = {**required, **{k: v for k, v in (optional or {}).items() if k in data.column_names}}
    for field, (expected, ok) in fields.items():
        for row, value in enumerate(data[field]):
            if value is None:
                raise DataError(f"{where}, row {row}, field {field!r}: missing")
            if not ok(value):
                raise DataError(f"{where}, row {row}, field {field!r}: expected {expected}, got {value!r}")
    return data
