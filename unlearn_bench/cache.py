"""Content-keyed caches that survive interruption: a folder appears only once it is complete."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def cache_key(spec: dict) -> str:
    """A short stable hash of a JSON-able spec."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_json(path: Path, data) -> Path:
    """Write ``data`` as JSON so that ``path`` is always complete or absent: a scratch file of this
    process renamed into place (processes writing the same file at once each rename a whole one)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
    return path


@contextmanager
def building(folder: Path) -> Iterator[Path]:
    """Yield a scratch folder beside ``folder`` and move it into place only if the block succeeds,
    so an interrupted build leaves no half-written cache entry. If a concurrent builder got there
    first, its result is kept and ours is dropped."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", suffix=".tmp", dir=folder.parent))
    try:
        yield tmp
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
