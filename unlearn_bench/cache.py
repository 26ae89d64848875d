"""Content-keyed caches that survive interruption: a folder appears only once it is complete.

Scratch files and folders are named after the process that writes them (``name.<host>-<pid>...tmp``),
so the next writer of the same entry removes those whose process is gone (a killed run's debris)
and leaves those of a live writer alone."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError

from unlearn_bench.errors import FolderError


def cache_key(spec: dict) -> str:
    """A short stable hash of a JSON-able spec."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_json(path: Path, data) -> Path:
    """Write ``data`` as JSON so that ``path`` is always complete or absent: a scratch file of this
    process renamed into place (processes writing the same file at once each rename a whole one)."""
    path = Path(path)
    remove_stale_scratch(path)
    tmp = path.with_name(f"{path.name}.{_owner()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, e) from None
    return path


@contextmanager
def building(folder: Path) -> Iterator[Path]:
    """Yield a scratch folder beside ``folder`` and move it into place only if the block succeeds,
    so an interrupted build leaves no half-written cache entry. If a concurrent builder got there
    first, its result is kept and ours is dropped."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f"{folder.name}.{_owner()}.", suffix=".tmp", dir=folder.parent))
    try:
        try:
            yield tmp
        except (OSError, SafetensorError) as e:  # a full disk, say: safetensors' message names no path
            raise _write_error(folder, e) from None
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_scratch(path: Path) -> list[Path]:
    """Remove the scratch files and folders of ``path`` left by processes of this host that no
    longer run (a killed build); return what was removed. Another host's are left alone: whether
    its process lives cannot be told from here."""
    path = Path(path)
    removed = []
    for scratch in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        host, _, pid = scratch.name[len(path.name) + 1 :].split(".")[0].rpartition("-")
        if host == _host() and pid.isdigit() and not _alive(int(pid)):
            if scratch.is_dir():
                shutil.rmtree(scratch, ignore_errors=True)
            else:
                scratch.unlink(missing_ok=True)
            removed.append(scratch)
    return removed


def _host() -> str:
    return socket.gethostname().replace(".", "_").replace("-", "_")


def _owner() -> str:
    return f"{_host()}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _write_error(path: Path, error: Exception) -> FolderError:
    """A failed cache or result write as one line naming where (safetensors' own message does not)."""
    why = getattr(error, "strerror", None) or str(error).splitlines()[0]
    return FolderError(
        f"could not write {path} ({why}); nothing partial was kept. Free some space, or point "
        "UNLEARN_BENCH_CACHE (paths.cache_dir) or the run directory at another disk"
    )
