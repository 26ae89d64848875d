"""One experiment cell, top to bottom (what ``unlearn-bench`` runs once its checks pass):

inputs (data, cached fine-tuned models) -> the forget set as attacked and filtered -> unlearning
with the method's loss -> eval -> recovery attacks on copies of the unlearned model ->
metrics.json. Each stage is one function below.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import lightning as L
from datasets import Dataset
from hydra.utils import instantiate
from omegaconf import DictConfig

from unlearn_bench.callbacks import EvalCurve, StopAtUnlearn
from unlearn_bench.console import format_table
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.data.source import head
from unlearn_bench.data.templates import HashedTemplate
from unlearn_bench.datamodule import QADataModule
from unlearn_bench.eval.evaluate import (
    EvalData,
    evaluate_model,
    generation_batch_size,
    load_eval_data,
    rouge_recalls,
)
from unlearn_bench.finetune import base_eval, cached_retain_reference, finetuned_model_dirs
from unlearn_bench.loggers import log_config, log_results
from unlearn_bench.lora import with_lora
from unlearn_bench.model import load_pretrained
from unlearn_bench.module import ComposedLossModule
from unlearn_bench.preflight import Components
from unlearn_bench.provenance import provenance
from unlearn_bench.recovery import recovery_scores
from unlearn_bench.report.plots import plot_curves
from unlearn_bench.resume import completed_metrics, config_hash, copied_metrics, write_metrics

log = logging.getLogger(__name__)


def run_cell(cfg: DictConfig, components: Components) -> dict:
    """Run one cell whose config passed :func:`~unlearn_bench.preflight.check_cell` (which built
    ``components``) and return what it writes to ``metrics.json``. Unlearning and every eval run on
    the trainer's device (Lightning moves the model back to the CPU when fit ends, so it is moved
    to the device again before each eval)."""
    start = time.time()
    output_dir = Path(cfg.paths.output_dir)
    done = completed_metrics(output_dir, cfg) if cfg.skip_completed else None
    if done is not None:
        log.info("Skipping the cell: %s already holds its metrics.json (skip_completed=false reruns it)", output_dir)
        return done
    done = copied_metrics(output_dir, cfg) if cfg.skip_completed else None
    if done is not None:  # its final scores still go to this run's loggers (its per-step losses do not)
        loggers = [instantiate(cfg.logger)] if cfg.logger else []
        log_config(loggers, cfg)
        log_results(loggers, done, done["unlearn_steps"], None)
        return done
    output_dir.mkdir(parents=True, exist_ok=True)

    seconds: dict[str, float] = {}  # per stage, metrics.json "seconds"
    with timed(seconds, "inputs"):
        inputs = load_inputs(cfg)
    L.seed_everything(cfg.seed, workers=True)
    model, tokenizer = load_pretrained(inputs.full_dir, cfg.model)
    encoder = QAEncoder(tokenizer, cfg.model.prompt_format, cfg.model.max_length)
    loggers = [instantiate(cfg.logger)] if cfg.logger else []
    log_config(loggers, cfg)
    callbacks, stop = unlearning_callbacks(cfg, encoder, inputs.eval_data, output_dir)
    trainer = instantiate(cfg.trainer, max_epochs=cfg.unlearn.epochs, logger=loggers or False, callbacks=callbacks)
    device = trainer.strategy.root_device
    with timed(seconds, "base_eval"):
        base_scores = base_eval(model.to(device), encoder, inputs.source, cfg, inputs.full_dir)
    model = with_lora(model, cfg.model.lora, "unlearn")  # with LoRA, only the adapters unlearn

    count_tokens = lambda text: len(tokenizer(text, add_special_tokens=False).input_ids)
    with timed(seconds, "forget_set"):
        forget, attack_stats, defense_stats = forget_set(components, inputs.forget, model, encoder, count_tokens)
    with timed(seconds, "unlearn"):  # the stop checks included (also apart: stop_check)
        unlearn(cfg, components, trainer, model, encoder, forget, inputs.retain)
    if stop is not None:
        seconds["stop_check"] = round(stop.seconds, 2)
    if components.after_unlearning is not None:
        with timed(seconds, "after_unlearning"):
            defense_stats |= components.after_unlearning(model, encoder, inputs.retain, cfg.trainer)

    with timed(seconds, "eval"):
        scores = evaluate_model(
            model.to(device),
            encoder,
            cfg.eval,
            cfg.data,
            inputs.eval_data,
            lambda: cached_retain_reference(cfg, inputs.source, inputs.retain_dir, encoder, inputs.eval_data, device),
            scored_by_stop_check(cfg, stop, trainer.global_step, components),
        )
    recovery, recovered = None, {}
    if components.recovery:
        with timed(seconds, "recovery"):
            recovery, recovered, declarations = recover(cfg, components.recovery, model, encoder, inputs, device)
        scores["extra_scores"] = [*scores.get("extra_scores", []), *declarations]
    metrics = {
        **scores,
        **recovered,
        "recovery": recovery,
        "attack": attack_stats,
        "defense": defense_stats or None,
        "unlearn_steps": trainer.global_step,
        "reached_stop_at_unlearn": None if stop is None else stop.reached,
        "unlearn_end": unlearn_end(stop),
        "stop_checks": None if stop is None else {"checks": stop.checks, "generated": stop.generated},
        "base_model": base_scores,
        "config": {key: _choice(cfg, key) for key in ("model", "data", "method", "attack", "defense")}
        | {"seed": cfg.seed, "finetune_seed": cfg.finetune.seed},
        "eval_device": str(device),
        "provenance": provenance(device),
        "wall_seconds": round(time.time() - start, 2),
        "seconds": seconds,
        "config_hash": config_hash(cfg),
    }
    if trainer.is_global_zero:  # under DDP every rank holds the same (gathered) metrics; one reports them
        report(cfg, metrics, loggers, trainer.global_step, output_dir)
    return metrics


class Inputs(NamedTuple):
    """What a cell reads: the data and the fine-tuned models."""

    source: object  # the TofuSource the splits come from
    eval_data: EvalData
    forget: Dataset
    retain: Dataset
    full_dir: str | Path  # the model that unlearns
    retain_dir: str | Path  # never saw the forget set: the reference for forget quality and the MIA


def load_inputs(cfg: DictConfig) -> Inputs:
    """The splits and the fine-tuned models: given (published checkpoints) or trained once per
    (model, data, fine-tune) config and cached."""
    source = instantiate(cfg.data.source)
    eval_data = load_eval_data(cfg.data, source)
    forget, retain = source.load(cfg.data.forget_split), source.load(cfg.data.retain_split)
    full_dir, retain_dir = finetuned_model_dirs(cfg, source)
    return Inputs(source, eval_data, forget, retain, full_dir, retain_dir)


def scored_by_stop_check(cfg: DictConfig, stop: StopAtUnlearn | None, step: int, components: Components) -> dict:
    """The forget set's scores from the stop check at the model's last step, as the eval would
    compute them (the whole set, the eval's batch size and cap): the eval does not generate them
    again. Empty after a defense that changes the model, or with eval.max_samples."""
    scores = stop.final_scores(step) if stop is not None else None
    if scores is None or components.after_unlearning is not None or cfg.eval.max_samples is not None:
        return {}
    return {cfg.data.forget_set: scores}


def unlearn_end(stop: StopAtUnlearn | None) -> str:
    """Why unlearning ended: at the target Unlearn, stalled short of it, or at the epoch cap."""
    if stop is None:
        return "epochs"
    return "target" if stop.reached else "stalled" if stop.stalled else "epochs"


def unlearning_callbacks(cfg: DictConfig, encoder: QAEncoder, eval_data: EvalData, output_dir: Path):
    """The callbacks of the unlearning fit: the stop at the target Unlearn score and the curve,
    when configured; and the stop callback itself (None without a target)."""
    forget_eval = eval_data.eval_sets[cfg.data.forget_set]
    callbacks, stop = [], None
    if cfg.unlearn.stop_at_unlearn is not None:
        stop = StopAtUnlearn(
            encoder,
            forget_eval,
            cfg.unlearn.stop_at_unlearn,
            cfg.unlearn.stop_check_every_n_steps,
            cfg.eval.batch_size,
            cfg.eval.max_new_tokens,
            cfg.unlearn.stop_check_max_gap_steps,
            cfg.unlearn.stop_patience_epochs,
            generation_batch_size(cfg.eval),
        )
        callbacks.append(stop)
    if cfg.eval.curve_every_n_steps is not None:
        callbacks.append(
            EvalCurve(
                encoder,
                forget_eval,
                [eval_data.eval_sets[s] for s in cfg.data.utility_sets],
                HashedTemplate(cfg.eval.trigger_templates),
                output_dir / "curve.csv",
                cfg.eval.curve_every_n_steps,
                cfg.eval.curve_max_samples,
                generation_batch_size(cfg.eval),
                cfg.eval.max_new_tokens,
            )
        )
    return callbacks, stop


def forget_set(components: Components, forget: Dataset, model, encoder: QAEncoder, count_tokens):
    """The forget set unlearning sees: as the attack rewrites it, then as the defense's filter
    keeps it; with what each did (metrics.json ``attack`` and ``defense``)."""
    attack_stats, defense_stats, attacked = None, {}, set()
    if components.attack is not None:
        clean, forget = forget, components.attack(forget)
        attack_stats = components.attack.stats(clean, forget, count_tokens)
        attacked = set(attack_stats.get("attacked", []))
    if components.forget_filter is not None:
        forget, dropped = components.forget_filter(forget, model, encoder)
        defense_stats = {
            "n_dropped": len(dropped),
            "dropped": dropped,
            "n_attacked_dropped": len(attacked & set(dropped)),
        }
    return forget, attack_stats, defense_stats


def unlearn(
    cfg: DictConfig, components: Components, trainer, model, encoder: QAEncoder, forget: Dataset, retain: Dataset
) -> None:
    """Fit the method's loss (with the defense's terms) over its splits: forget, retain and the
    derived ones (IDK's refusals, SU's scope samples), batched as the terms pair them."""
    loss = components.loss
    data = {"forget": forget, "retain": retain}
    data |= {name: build(forget, retain, cfg.seed) for name, build in components.derived.items()}
    data = {split: data[split] for split in sorted(loss.splits)}
    datamodule = QADataModule(
        data,
        encoder,
        cfg.unlearn.batch_size,
        epoch_split="forget" if "forget" in loss.splits else None,
        paired=loss.paired,
    )
    optimizer = instantiate(cfg.unlearn.optimizer)
    stopping = cfg.unlearn.stop_at_unlearn is not None  # the stop check follows each step's agreement
    module = ComposedLossModule(model, loss, optimizer, cfg.unlearn.scheduler, cfg.unlearn.warmup_ratio, stopping)
    trainer.fit(module, datamodule)


def recover(
    cfg: DictConfig, attacks: dict, model, encoder: QAEncoder, inputs: Inputs, device
) -> tuple[dict, dict, list]:
    """The recovery attacks (``recovery.<name>``) on copies of the unlearned ``model``, scored on
    the eval's forget set against the model before unlearning (:func:`recovery_scores`); every
    model on ``device``."""
    forget = head(inputs.eval_data.eval_sets[cfg.data.forget_set], cfg.eval.max_samples)
    recalls = lambda m, questions, answers: rouge_recalls(
        m, encoder, questions, answers, generation_batch_size(cfg.eval), cfg.eval.max_new_tokens
    )
    base = lambda: load_pretrained(inputs.full_dir, cfg.model)[0].to(device)
    return recovery_scores(attacks, model, base, encoder, forget, cfg.trainer, recalls)


def report(cfg: DictConfig, metrics: dict, loggers: list, step: int, output_dir: Path) -> None:
    """metrics.json, the curve plot, the loggers' final values and the console table."""
    path = write_metrics(output_dir, metrics, cfg.paths.cache_dir)
    curve = output_dir / "curve.csv" if cfg.eval.curve_every_n_steps is not None else None
    curve_png = plot_curves({"": curve}, output_dir / "curve.png") if curve else None
    log_results(loggers, metrics, step, curve_png)
    print(format_table(metrics))
    log.info("Wrote %s", path)


@contextmanager
def timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Record the block's wall-clock seconds as ``seconds[stage]``."""
    start = time.perf_counter()
    yield
    seconds[stage] = round(time.perf_counter() - start, 2)


def _choice(cfg: DictConfig, key: str) -> str:
    return cfg[key].get("name", "?") if isinstance(cfg[key], DictConfig) else str(cfg[key])
