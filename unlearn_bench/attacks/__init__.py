"""Forget-set transforms a malicious forget request can apply.

An attack is any object a config's ``attack.transform`` builds by ``_target_`` that follows
:class:`Attack`; the cell applies it to the forget set before unlearning and records its stats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # datasets takes a second to import; --help and config errors need not wait
    from datasets import Dataset

from unlearn_bench.attacks.stealthy import StealthyAttack, token_insertion_rate


class Attack(Protocol):
    def __call__(self, forget: Dataset) -> Dataset:
        """The forget set as the attacker submits it (same rows, in the same order)."""

    def stats(self, clean: Dataset, attacked: Dataset, count_tokens: Callable[[str], int]) -> dict:
        """What it changed, for metrics.json ``attack``. An ``attacked`` list of row indices lets a
        data-side defense report how many attacked rows it caught (``n_attacked_dropped``)."""


__all__ = ["Attack", "StealthyAttack", "token_insertion_rate"]
