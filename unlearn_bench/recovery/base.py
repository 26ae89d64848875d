"""What every recovery attack returns, and how the cell scores it."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Attacked(NamedTuple):
    """The model to score (a copy: the unlearned model is left as it was), a rewrite of each forget
    question for scoring (prompt attacks), the forget rows to score (all when None: relearning
    leaves out the rows it trained on) and what the attack did, for metrics.json."""

    model: object
    rewrites: dict[str, Callable[[int, str], str]] | None = None  # name -> (row, question) -> prompt
    scored: list[int] | None = None
    stats: dict | None = None
