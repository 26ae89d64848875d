"""Fine-tune stage: the "full" model (all data, like TOFU's full model) and the "retain" model
(without the forget authors, the reference for forget quality), each trained once and cached, or
given as published checkpoints (``finetune.full_model`` / ``finetune.retain_model``).

The cache key hashes the model, data and fine-tune config, so every sweep cell that shares them
reuses the same checkpoint, and a changed config can never pick up a stale one.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import lightning as L
import torch
from datasets import Dataset, concatenate_datasets
from filelock import FileLock, Timeout
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unlearn_bench.cache import building, cache_key, write_json
from unlearn_bench.console import quiet_library_warnings
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.data.source import TofuSource
from unlearn_bench.data.templates import HashedTemplate
from unlearn_bench.datamodule import QADataModule
from unlearn_bench.eval.distributed import world
from unlearn_bench.eval.evaluate import EvalData, retain_reference, score_kwargs, score_set
from unlearn_bench.folders import model_path
from unlearn_bench.lora import merged, uses_lora, with_lora
from unlearn_bench.losses import NLL, ComposedLoss
from unlearn_bench.model import base_model, load_pretrained
from unlearn_bench.module import ComposedLossModule

log = logging.getLogger(__name__)
ROLES = ("full", "retain")
GIVEN_KEYS = ("full_model", "retain_model")  # published checkpoints: not part of the fine-tune's cache key


def cached_model_dir(cfg: DictConfig, source: TofuSource, role: str) -> Path:
    """Where the fine-tuned ``role`` model of this (model, data, fine-tune) config lives in the
    cache, whether or not it has been built."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    model = OmegaConf.to_container(cfg.model, resolve=True)
    if not uses_lora(cfg.model.lora, "finetune"):
        model.pop("lora")  # unlearning-only LoRA leaves the fine-tuned models as they are
    spec = {
        "model": model,
        "data": source.fingerprint,
        "splits": list(cfg.data.finetune_splits[role]),
        "tokenizer_splits": list(cfg.data.finetune_splits.full),
        "finetune": {
            k: v for k, v in OmegaConf.to_container(cfg.finetune, resolve=True).items() if k not in GIVEN_KEYS
        },
        "precision": str(cfg.trainer.get("precision")),
    }
    return Path(cfg.paths.cache_dir) / "models" / f"{cfg.model.name}-{role}-{cache_key(spec)}"


def given_model(cfg: DictConfig, role: str) -> str | None:
    """The published checkpoint given for ``role`` (``finetune.<role>_model``), if any."""
    given = cfg.finetune.get(f"{role}_model")
    return model_path(given, f"finetune.{role}_model") if given else None


def finetuned_model_dirs(cfg: DictConfig, source: TofuSource) -> tuple[str | Path, str | Path]:
    """The full and the retain model (:func:`finetuned_model_dir`), each built at the same time as
    the other where they can be: cells running in parallel (joblib, SLURM) each start with the one
    no other cell is building; one process on several CPU cores, with both to build, trains the
    retain model in a second process, each on half the cores (a small model's step gains less from
    a second thread than the two builds gain from running side by side: README, "Quick start")."""
    missing = [r for r in ROLES if not (given_model(cfg, r) or cached_model_dir(cfg, source, r).is_dir())]
    alone = trains_on_cpu(cfg.trainer) and not data_parallel(cfg.trainer)
    if len(missing) == len(ROLES) and alone and torch.get_num_threads() >= 2:
        return _build_side_by_side(cfg, source)
    built = {role: finetuned_model_dir(cfg, source, role, wait=False) for role in ROLES}
    full, retain = (built[role] or finetuned_model_dir(cfg, source, role) for role in ROLES)
    return full, retain


def _build_side_by_side(cfg: DictConfig, source: TofuSource) -> tuple[Path, Path]:
    """Both models, the retain model in a spawned process; the cores are shared between the two."""
    threads = torch.get_num_threads()
    mine = threads - threads // 2
    log.info("Fine-tuning the full and the retain model side by side, on %d and %d threads", mine, threads // 2)
    with _build_processes(1, threads // 2) as pool:
        retain = pool.submit(_build_model, _portable(cfg), "retain")
        torch.set_num_threads(mine)
        try:
            full = finetuned_model_dir(cfg, source, "full")
        finally:
            torch.set_num_threads(threads)
        return full, retain.result()


def build_models(builds: list[tuple[DictConfig, str]], workers: int) -> None:
    """Fine-tune each (config, role) of ``builds``, ``workers`` at a time in spawned processes that
    share the cores (what a sweep does first: :mod:`~unlearn_bench.sweep_start`). Builds take about
    as long as each other, so a last round with fewer builds than workers gets all the cores: no
    core idles through it (the thread count does not change the model: tests/test_cache.py)."""
    rounds = len(builds) - len(builds) % workers
    for part, at_once in ((builds[:rounds], workers), (builds[rounds:], len(builds) % workers)):
        if not part:
            continue
        with _build_processes(at_once, max(1, torch.get_num_threads() // at_once)) as pool:
            for build in [pool.submit(_build_model, _portable(cfg), role) for cfg, role in part]:
                build.result()


def _build_processes(workers: int, threads: int) -> ProcessPoolExecutor:
    """``workers`` fresh (spawned) processes for fine-tunes, ``threads`` each."""
    return ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), _quiet_worker, (threads,))


def _portable(cfg: DictConfig) -> dict:
    """What a fine-tune reads of a cell config, resolved, for another process."""
    spec = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "data", "finetune", "trainer")}
    spec["trainer"]["enable_progress_bar"] = False  # one bar on the console at most: the cell's
    spec["paths"] = {"cache_dir": str(cfg.paths.cache_dir)}
    return spec


def _quiet_worker(threads: int) -> None:
    """A build process's setup: its share of the cores, and a console as quiet as the cell's."""
    torch.set_num_threads(threads)
    quiet_library_warnings()
    for name in ("lightning.pytorch", "lightning.fabric"):  # their INFO lines ("GPU available", tips)
        logging.getLogger(name).setLevel(logging.WARNING)


def _build_model(spec: dict, role: str) -> Path:
    cfg = OmegaConf.create(spec)
    return Path(finetuned_model_dir(cfg, instantiate(cfg.data.source), role))


def trains_on_cpu(trainer_cfg: DictConfig) -> bool:
    """Whether the trainer config puts training on the CPU."""
    accelerator = trainer_cfg.get("accelerator", "auto")
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def finetuned_model_dir(cfg: DictConfig, source: TofuSource, role: str, wait: bool = True) -> str | Path | None:
    """The fine-tuned ``role`` model: the given checkpoint (a hub id or folder), else the cache's
    folder (``save_pretrained`` format), training it if absent. A file lock makes cells running in
    parallel (joblib, SLURM) wait for one builder, or, with ``wait=False``, return None at once
    while another process builds it; the ranks of one data-parallel cell build it together instead
    (a lock would deadlock them)."""
    given = given_model(cfg, role)
    if given is not None:
        log.info("Using the given %s model %s (finetune.%s_model): no fine-tuning", role, given, role)
        return given
    folder = cached_model_dir(cfg, source, role)
    lock = Path(f"{folder}.lock")
    if folder.is_dir():
        log.info("Reusing the fine-tuned %s model at %s", role, folder)
        lock.unlink(missing_ok=True)  # left by a build killed after its rename: a waiter on it finds the folder
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        with nullcontext() if data_parallel(cfg.trainer) else FileLock(lock, timeout=-1 if wait else 0):
            if folder.is_dir():  # another cell built it while this one waited
                log.info("Reusing the fine-tuned %s model at %s", role, folder)
            else:
                _finetune(cfg, source, role, folder)
            # Built: later cells take the fast path above and never open the lock, so it can go. A
            # killed build leaves it, and the next builder removes it (with the scratch folder).
            lock.unlink(missing_ok=True)
    except Timeout:
        return None
    return folder


def data_parallel(trainer_cfg: DictConfig) -> bool:
    """Whether the trainer runs several processes in lockstep (DDP, FSDP, DeepSpeed)."""
    devices = trainer_cfg.get("devices", 1)
    return world()[1] > 1 or trainer_cfg.get("num_nodes", 1) > 1 or devices not in (1, "1")


def _finetune(cfg: DictConfig, source: TofuSource, role: str, folder: Path) -> None:
    splits = list(cfg.data.finetune_splits[role])
    log.info("Fine-tuning the %s model on %s (cached at %s)", role, splits, folder)
    L.seed_everything(cfg.finetune.seed, workers=True)  # also fixes the random init of a scratch model
    corpus = _texts([source.load(s) for s in cfg.data.finetune_splits.full])
    model, tokenizer = base_model(cfg.model, corpus, Path(cfg.paths.cache_dir) / "tokenizers")
    encoder = QAEncoder(tokenizer, cfg.model.prompt_format, cfg.model.max_length)
    train = concatenate_datasets([source.load(s).select_columns(["question", "answer"]) for s in splits])
    model = with_lora(model, cfg.model.lora, "finetune")
    fit_nll(
        model,
        encoder,
        train,
        cfg.finetune.batch_size,
        instantiate(cfg.finetune.optimizer),
        cfg.trainer,
        cfg.finetune.scheduler,
        cfg.finetune.warmup_ratio,
        max_epochs=cfg.finetune.epochs,
    )
    model = merged(model)  # the cache holds plain models: unlearning adds its own adapters

    with building(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def fit_nll(
    model,
    encoder: QAEncoder,
    data: Dataset,
    batch_size: int,
    optimizer,
    trainer_cfg: DictConfig,
    scheduler: str = "constant",
    warmup_ratio: float = 0.0,
    **limits,
) -> int:
    """Plain fine-tuning: minimise NLL(answer | question) on ``data``, for the Trainer ``limits``
    (``max_epochs`` or ``max_steps``); returns the number of steps taken."""
    module = ComposedLossModule(model, ComposedLoss({"nll": NLL("train")}), optimizer, scheduler, warmup_ratio)
    trainer = instantiate(trainer_cfg, logger=False, enable_checkpointing=False, **limits)
    trainer.fit(module, QADataModule({"train": data}, encoder, batch_size))
    return trainer.global_step


def base_eval(model, encoder: QAEncoder, source: TofuSource, cfg: DictConfig, model_id: str | Path) -> dict:
    """How well the fine-tuned model ``model_id`` knows the data before unlearning: ROUGE-L recall
    on the forget and utility sets, plain and with the trigger templates (``eval.trigger_templates``).
    Cached per (model, data, eval settings), so a quick run with other eval settings never sets the
    ``base_model`` numbers of later cells."""
    names = [cfg.data.forget_set, *cfg.data.utility_sets]
    spec = {
        "model": str(model_id),
        "loading": _loading(cfg),
        "data": source.fingerprint,
        "sets": {name: cfg.data.eval_sets[name] for name in names},
        "eval": score_kwargs(cfg.eval) | {"trigger_templates": list(cfg.eval.trigger_templates)},
    }
    file = Path(cfg.paths.cache_dir) / "base_eval" / f"{cfg.model.name}-{cache_key(spec)}.json"
    if file.is_file():
        return json.loads(file.read_text())
    kwargs, templated = score_kwargs(cfg.eval), HashedTemplate(cfg.eval.trigger_templates)
    report = {}
    for name in names:
        data = source.load(cfg.data.eval_sets[name])
        report[name] = {
            "plain": score_set(model, encoder, data, desc=f"base {name}", **kwargs)["rougeL_recall"],
            "templated": score_set(model, encoder, data, rewrite=templated, desc=f"base {name}+tpl", **kwargs)[
                "rougeL_recall"
            ],
        }
    file.parent.mkdir(parents=True, exist_ok=True)
    write_json(file, report)  # complete or absent, even with the ranks of a DDP cell writing at once
    return report


def cached_retain_reference(
    cfg: DictConfig, source: TofuSource, retain_dir: str | Path, encoder: QAEncoder, eval_data: EvalData, device
) -> dict:
    """:func:`~unlearn_bench.eval.evaluate.retain_reference` of the retain model ``retain_dir``,
    cached like :func:`base_eval` per (model, data, eval settings, device type): every cell on one
    retain model shares it, and the retain model is loaded only to build it."""
    forget = cfg.data.forget_set
    spec = {
        "model": str(retain_dir),
        "loading": _loading(cfg),
        "data": source.fingerprint,
        "forget": cfg.data.eval_sets[forget],
        "normalised": forget in cfg.data.normalised_sets,
        "holdout": cfg.data.holdout_split,
        "eval": {key: cfg.eval[key] for key in ("batch_size", "max_samples", "min_k")},  # also its arguments
        "device": torch.device(device).type,
    }
    file = Path(cfg.paths.cache_dir) / "retain_reference" / f"{cfg.model.name}-{cache_key(spec)}.json"
    if file.is_file():
        return json.loads(file.read_text())
    retain_model = load_pretrained(retain_dir, cfg.model)[0].to(device)
    reference = retain_reference(
        retain_model, encoder, eval_data.eval_sets[forget], spec["normalised"], eval_data.holdout, **spec["eval"]
    )
    file.parent.mkdir(parents=True, exist_ok=True)
    write_json(file, reference)  # complete or absent, as base_eval's
    return reference


def _loading(cfg: DictConfig) -> dict:
    """How the model is loaded (its config section without the unlearning-only LoRA): part of the
    keys of the caches of its scores."""
    return {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "lora"}


def _texts(datasets) -> list[str]:
    """The questions and answers the model is fine-tuned on, for training its tokenizer. Eval-only
    fields (paraphrased and perturbed answers) stay out, so changing them never changes the model."""
    return [t for data in datasets for row in data for t in (row["question"], row["answer"]) if t]
