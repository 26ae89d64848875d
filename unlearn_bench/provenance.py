"""What produced a metrics.json: package versions, the project's commit, Python, the device and
the CPU numerics. The same command on another machine or library version can build a different
fine-tuned model, so a result carries these, and a report warns when one sweep mixes them."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from unlearn_bench.numerics import cpu_numerics

PACKAGES = ("torch", "transformers", "lightning", "datasets", "peft", "hydra-core", "torchmetrics", "tokenizers")


def provenance(device: torch.device | str) -> dict:
    """The record written under ``provenance`` in metrics.json."""
    device = torch.device(device)
    return {
        "versions": {name: _version(name) for name in PACKAGES},
        "git": git_state(Path(__file__).resolve().parent),
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})",
        "cpu_numerics": cpu_numerics(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_state(folder: Path) -> dict | None:
    """The commit of the checkout holding ``folder`` and whether it had uncommitted changes;
    None for an installed package outside any checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def differing(records: list[dict]) -> dict[str, list]:
    """The provenance fields (dotted keys) whose values differ across ``records``, with the
    distinct values: what a report warns about. Missing records (older metrics.json) count as a
    value of their own."""
    flat = [_flatten(r or {}) for r in records]
    keys = sorted({k for f in flat for k in f})
    out = {}
    for key in keys:
        values = list(dict.fromkeys(str(f.get(key)) for f in flat))
        if len(values) > 1:
            out[key] = values
    return out


def _flatten(record: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out
