"""Eval under data parallelism: each rank scores a contiguous slice of the samples and the
results are gathered in order, so every sample is scored exactly once and every rank ends with
the same full list (and so the same metrics, and the same early-stopping decision)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")
R = TypeVar("R")


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def sharded(fn: Callable[[list[T]], list[R]], items: list[T]) -> list[R]:
    """``fn(items)``, computed a slice per rank and gathered; ``fn`` must map a list to a list of
    the same length whose elements pickle (move tensors to the CPU first)."""
    rank, size = world()
    if size == 1:
        return fn(items)
    per_rank = math.ceil(len(items) / size)
    mine = items[rank * per_rank : (rank + 1) * per_rank]
    parts: list[list[R] | None] = [None] * size
    dist.all_gather_object(parts, fn(mine) if mine else [])
    return [result for part in parts for result in part]
