"""Every metric of a cell on a saved model directory, without training (what
``unlearn-bench-eval`` runs once its checks pass).

Scores e.g. the cached fine-tuned models, a model unlearned elsewhere, or a public checkpoint on
the same sets as a cell, and writes ``metrics.json`` in the run directory.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from unlearn_bench.console import format_table
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.eval.evaluate import evaluate_model, load_eval_data
from unlearn_bench.finetune import cached_model_dir, cached_retain_reference, given_model
from unlearn_bench.folders import model_path
from unlearn_bench.model import load_pretrained
from unlearn_bench.provenance import provenance
from unlearn_bench.resume import write_metrics

log = logging.getLogger(__name__)


def evaluate_saved(cfg: DictConfig) -> dict:
    """Score ``cfg.model_dir`` (a config that passed :func:`~unlearn_bench.preflight.check_eval`)
    and return what it writes to ``metrics.json``."""
    start = time.time()
    model_dir = model_path(cfg.model_dir, "model_dir")
    source = instantiate(cfg.data.source)
    if cfg.retain_model_dir:
        retain_dir = model_path(cfg.retain_model_dir, "retain_model_dir")
    else:
        retain_dir = given_model(cfg, "retain")
    if retain_dir is None:
        retain_dir = cached_model_dir(cfg, source, "retain")
        if not retain_dir.is_dir():
            log.warning(
                "No retain model in the cache for this config (%s): forget quality and the membership "
                "inference are skipped; pass retain_model_dir=PATH to score them.",
                retain_dir,
            )
            retain_dir = None

    # The device a cell of this trainer config would train and evaluate on.
    device = instantiate(cfg.trainer, logger=False).strategy.root_device
    model, tokenizer = load_pretrained(model_dir, cfg.model)
    encoder = QAEncoder(tokenizer, cfg.model.prompt_format, cfg.model.max_length)
    data = load_eval_data(cfg.data, source)
    reference = None
    if retain_dir:
        reference = lambda: cached_retain_reference(cfg, source, retain_dir, encoder, data, device)
    metrics = {
        **evaluate_model(model.to(device), encoder, cfg.eval, cfg.data, data, reference),
        "model_dir": str(model_dir),
        "retain_model_dir": str(retain_dir) if retain_dir else None,
        "config": {"model": cfg.model.name, "data": cfg.data.name},
        "eval_device": str(device),
        "provenance": provenance(device),
        "wall_seconds": round(time.time() - start, 2),
    }
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = write_metrics(output_dir, metrics)
    print(format_table(metrics))
    log.info("Wrote %s", path)
    return metrics
