"""The folders a run is given or writes: a model is a hub id or a ``save_pretrained`` folder that
holds a config, weights and a tokenizer; outputs and caches go to folders it can write. Checked
before anything loads, so a wrong path fails in one line naming it, not in a tokenizer traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

from unlearn_bench.config import is_number
from unlearn_bench.errors import FolderError

# What from_pretrained needs in a folder, and the file patterns that provide it.
MODEL_FILES = {
    "config.json": ("config.json",),
    "weights (*.safetensors or *.bin)": ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json"),
    "tokenizer (tokenizer.json, tokenizer.model or tokenizer_config.json)": (
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer_config.json",
    ),
}


def looks_local(value: str | Path) -> bool:
    """Whether ``value`` is meant as a local path (``.``, ``/`` or ``~`` first) rather than a hub
    id: one that does not exist is then an error here, not a failed download."""
    return str(value).startswith((".", "/", "~"))


def model_path(value: str | Path, key: str) -> str:
    """``value`` as ``from_pretrained`` takes it: a local model folder, checked for a config,
    weights and a tokenizer, or a hub id (anything that does not look like a path), unchecked here."""
    if not isinstance(value, str | Path):  # Hydra reads `2024` as a number and `true` as a bool
        number = f"; Hydra reads {value} as a number: quote it ({key}=\"'{value}'\") or write ./{value}"
        hint = number if is_number(value) else ""
        raise FolderError(f"{key}={value!r} is not a hub id or a model folder{hint}")
    local = Path(value).expanduser()
    if not local.exists():
        if looks_local(value):
            raise FolderError(
                f"{key}={str(value)!r} does not exist; point it at a save_pretrained model folder "
                "(model and tokenizer) or use a hub id"
            )
        return str(value)
    if not local.is_dir():
        raise FolderError(f"{key}={str(value)!r} is a file; point it at the save_pretrained folder that holds it")
    missing = [what for what, patterns in MODEL_FILES.items() if not any(any(local.glob(p)) for p in patterns)]
    if missing:
        found = sorted(p.name for p in local.iterdir())
        raise FolderError(
            f"{key}={str(value)!r} has no {' and no '.join(missing)} (it holds {found[:6] or 'nothing'}"
            f"{' ...' if len(found) > 6 else ''}); save the model and its tokenizer there with "
            "save_pretrained, or point the key at such a folder or a hub id"
        )
    return str(local)


def check_writable(folder: str | Path, key: str) -> None:
    """``folder`` exists (created if need be) and takes a new file."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise FolderError(
            f"{key}={str(folder)!r} is not writable ({e.strerror or e}); point {key} at a folder you can write"
        ) from None
