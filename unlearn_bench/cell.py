"""One experiment cell, top to bottom (what ``unlearn-bench`` runs once its checks pass):

fine-tuned model (cached) -> unlearning with the method's loss -> eval -> metrics.json.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from unlearn_bench.callbacks import EvalCurve, StopAtUnlearn
from unlearn_bench.console import format_table
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.data.templates import HashedTemplate
from unlearn_bench.datamodule import QADataModule
from unlearn_bench.eval.evaluate import evaluate_model, load_eval_data
from unlearn_bench.finetune import base_eval, finetuned_model_dir
from unlearn_bench.loggers import log_config, log_results
from unlearn_bench.lora import with_lora
from unlearn_bench.model import load_pretrained
from unlearn_bench.module import ComposedLossModule
from unlearn_bench.preflight import Components
from unlearn_bench.provenance import provenance
from unlearn_bench.report.plots import plot_curves
from unlearn_bench.resume import completed_metrics, config_hash, write_metrics

log = logging.getLogger(__name__)


def run_cell(cfg: DictConfig, components: Components) -> dict:
    """Run one cell whose config passed :func:`~unlearn_bench.preflight.check_cell` (which built
    ``components``) and return what it writes to ``metrics.json``."""
    start = time.time()
    attack, forget_filter, loss, derived, after_unlearning = components
    output_dir = Path(cfg.paths.output_dir)
    done = completed_metrics(output_dir, cfg) if cfg.skip_completed else None
    if done is not None:
        log.info(
            "Skipping the cell: %s already holds its metrics.json (skip_completed=false runs it again)", output_dir
        )
        return done
    output_dir.mkdir(parents=True, exist_ok=True)

    # 1. The fine-tuned models: given (published checkpoints) or trained once per (model, data,
    #    fine-tune) config and cached.
    source = instantiate(cfg.data.source)
    eval_data = load_eval_data(cfg.data, source)  # before training: a missing or malformed set fails early
    forget, retain = source.load(cfg.data.forget_split), source.load(cfg.data.retain_split)
    full_dir = finetuned_model_dir(cfg, source, "full")
    retain_dir = finetuned_model_dir(cfg, source, "retain")  # the reference for forget quality

    # 2. Unlearning: the method's loss over paired forget/retain batches, on the trainer's device.
    #    Every eval of the cell runs on that device too (Lightning moves the model back to the CPU
    #    when fit ends, so it is moved to the device again before each eval).
    L.seed_everything(cfg.seed, workers=True)
    model, tokenizer = load_pretrained(full_dir, cfg.model)
    encoder = QAEncoder(tokenizer, cfg.model.prompt_format, cfg.model.max_length)
    eval_sets = eval_data.eval_sets
    callbacks, stop = [], None
    if cfg.unlearn.stop_at_unlearn is not None:
        stop = StopAtUnlearn(
            encoder,
            eval_sets[cfg.data.forget_set],
            cfg.unlearn.stop_at_unlearn,
            cfg.unlearn.stop_check_every_n_steps,
            cfg.eval.batch_size,
            cfg.eval.max_new_tokens,
        )
        callbacks.append(stop)
    if cfg.eval.curve_every_n_steps is not None:
        callbacks.append(
            EvalCurve(
                encoder,
                eval_sets[cfg.data.forget_set],
                [eval_sets[s] for s in cfg.data.utility_sets],
                HashedTemplate(cfg.eval.trigger_templates),
                output_dir / "curve.csv",
                cfg.eval.curve_every_n_steps,
                cfg.eval.curve_max_samples,
                cfg.eval.batch_size,
                cfg.eval.max_new_tokens,
            )
        )
    loggers = [instantiate(cfg.logger)] if cfg.logger else []
    log_config(loggers, cfg)
    trainer = instantiate(cfg.trainer, max_epochs=cfg.unlearn.epochs, logger=loggers or False, callbacks=callbacks)
    device = trainer.strategy.root_device
    model.to(device)
    base_scores = base_eval(model, encoder, source, cfg, full_dir)
    model = with_lora(model, cfg.model.lora, "unlearn")  # with LoRA, only the adapters unlearn
    attack_stats, defense_stats, attacked = None, {}, set()
    if attack is not None:
        clean, forget = forget, attack(forget)
        count = lambda text: len(tokenizer(text, add_special_tokens=False).input_ids)
        attack_stats = attack.stats(clean, forget, count)
        attacked = set(attack_stats.get("attacked", []))
    if forget_filter is not None:
        forget, dropped = forget_filter(forget, model, encoder)
        defense_stats |= {
            "n_dropped": len(dropped),
            "dropped": dropped,
            "n_attacked_dropped": len(attacked & set(dropped)),
        }
    data = {"forget": forget, "retain": retain}
    data |= {name: build(forget, retain, cfg.seed) for name, build in derived.items()}
    data = {split: data[split] for split in sorted(loss.splits)}
    datamodule = QADataModule(
        data,
        encoder,
        cfg.unlearn.batch_size,
        epoch_split="forget" if "forget" in loss.splits else None,
        paired=loss.paired,
    )
    module = ComposedLossModule(
        model, loss, instantiate(cfg.unlearn.optimizer), cfg.unlearn.scheduler, cfg.unlearn.warmup_ratio
    )
    trainer.fit(module, datamodule)
    if after_unlearning is not None:
        defense_stats |= after_unlearning(model, encoder, retain, cfg.trainer)

    # 3. Eval: ROUGE-L recall of greedy answers on every eval set, the utility sets again with
    #    benign trigger templates on the prompts; TOFU's likelihood metrics, memorisation and
    #    multiple-choice accuracy. Forget quality and the membership inference compare with the
    #    retain model (which never saw the forget set).
    model.to(device)
    metrics = {
        **evaluate_model(
            model, encoder, cfg.eval, cfg.data, eval_data, lambda: load_pretrained(retain_dir, cfg.model)[0].to(device)
        ),
        "attack": attack_stats,
        "defense": defense_stats or None,
        "unlearn_steps": trainer.global_step,
        "reached_stop_at_unlearn": None if stop is None else stop.reached,
        "base_model": base_scores,
        "config": {key: _choice(cfg, key) for key in ("model", "data", "method", "attack", "defense")}
        | {"seed": cfg.seed, "finetune_seed": cfg.finetune.seed},
        "eval_device": str(device),
        "provenance": provenance(device),
        "wall_seconds": round(time.time() - start, 2),
        "config_hash": config_hash(cfg),
    }
    if trainer.is_global_zero:  # under DDP every rank holds the same (gathered) metrics; one reports them
        path = write_metrics(output_dir, metrics)
        curve = output_dir / "curve.csv" if cfg.eval.curve_every_n_steps is not None else None
        curve_png = plot_curves({"": curve}, output_dir / "curve.png") if curve else None
        log_results(loggers, metrics, trainer.global_step, curve_png)
        print(format_table(metrics))
        log.info("Wrote %s", path)
    return metrics


def _choice(cfg: DictConfig, key: str) -> str:
    return cfg[key].get("name", "?") if isinstance(cfg[key], DictConfig) else str(cfg[key])
