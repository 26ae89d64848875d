"""Resuming a sweep: a cell is done when its run directory holds a complete metrics.json written
from the same config. metrics.json is renamed into place only once complete and records a hash of
the config, so an interrupted cell runs again, and so does one whose config has changed since.

A copy of each metrics.json is kept in the cache under its config hash, so a cell that another
sweep (or run directory) already ran with the same config, e.g. table3_su's cells without a
defense, which are table2_attack's attacked cells, is copied rather than run again."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from unlearn_bench.cache import cache_key, write_json

log = logging.getLogger(__name__)

# What decides a cell's result; paths, loggers, progress bars and the sweep's name do not.
RESULT_KEYS = ("model", "data", "method", "attack", "defense", "finetune", "unlearn", "eval", "seed")
# Options added after sweeps had run, that change nothing while null: left out of the hash then,
# so those sweeps still resume (a90ba8f's stop patience had made every earlier cell run again).
ADDED_OFF = (("unlearn", "stop_patience_epochs"), ("eval", "generation_batch_size"))


def config_hash(cfg: DictConfig) -> str:
    """A short hash of the resolved sections that decide a cell's result; where caches live
    (``cache_dir`` keys, e.g. the generated data's) does not, so a moved cache resumes."""
    spec = {
        key: OmegaConf.to_container(cfg[key], resolve=True) if isinstance(cfg[key], DictConfig) else cfg[key]
        for key in RESULT_KEYS
    }
    spec["trainer"] = {
        k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if k != "enable_progress_bar"
    }
    if cfg.get("recovery"):  # only then: cells without recovery attacks keep their hashes
        spec["recovery"] = OmegaConf.to_container(cfg.recovery, resolve=True)
    for section, key in ADDED_OFF:  # off, they leave the hashes of cells run before they existed
        if spec[section].get(key, ...) is None:
            del spec[section][key]
    return cache_key(_without_cache_dirs(spec))


def _without_cache_dirs(spec):
    if isinstance(spec, dict):
        return {k: _without_cache_dirs(v) for k, v in spec.items() if k != "cache_dir"}
    if isinstance(spec, list):
        return [_without_cache_dirs(v) for v in spec]
    return spec


def read_metrics(file: Path, required: tuple[str, ...] = ()) -> tuple[dict | None, str | None]:
    """A cell's metrics.json, or None and why not: absent (no reason), not JSON (truncated), or
    not a cell's (not an object, or without the ``required`` keys its reader needs)."""
    if not file.is_file():
        return None, None
    try:
        metrics = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return None, f"metrics.json is not valid JSON ({e}); run the cell again"
    missing = [k for k in required if isinstance(metrics, dict) and k not in metrics]
    if not isinstance(metrics, dict) or missing:
        return (
            None,
            f"metrics.json lacks {missing or 'a JSON object'}: not written by unlearn-bench; run the cell again",
        )
    return metrics, None


def completed_metrics(output_dir: Path, cfg: DictConfig) -> dict | None:
    """The metrics of a finished run of this very config in ``output_dir``, else None."""
    path = Path(output_dir) / "metrics.json"
    metrics, problem = read_metrics(path)
    if problem is not None:
        log.warning("%s: %s", path, problem)
        return None
    if metrics is not None and metrics.get("config_hash") != config_hash(cfg):
        log.warning("%s was written from another config; running the cell again", path)
        return None
    return metrics


def copied_metrics(output_dir: Path, cfg: DictConfig) -> dict | None:
    """The metrics another run directory wrote from the same config, copied from the cache into
    ``output_dir``; else None. A cell with curves is never copied (curve.csv is not cached)."""
    if cfg.eval.get("curve_every_n_steps") is not None:
        return None
    digest = config_hash(cfg)
    path = _cell_copy(cfg.paths.cache_dir, digest)
    metrics, problem = read_metrics(path, required=("config_hash",))
    if problem is not None:
        log.warning("%s: %s", path, problem)
    if metrics is None or metrics["config_hash"] != digest:
        return None
    log.info("Copying the cell's metrics.json from %s: the same config already ran elsewhere", path)
    write_metrics(output_dir, metrics)
    return metrics


def write_metrics(output_dir: Path, metrics: dict, cache_dir: str | Path | None = None) -> Path:
    """Write metrics.json so that it is always complete (a scratch file renamed into place), and
    a cell's copy in the cache under its config hash (``cache_dir`` given)."""
    if cache_dir is not None:
        copy = _cell_copy(cache_dir, metrics["config_hash"])
        copy.parent.mkdir(parents=True, exist_ok=True)
        write_json(copy, metrics)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return write_json(Path(output_dir) / "metrics.json", metrics)


def _cell_copy(cache_dir: str | Path, digest: str) -> Path:
    return Path(cache_dir) / "cells" / f"{digest}.json"
