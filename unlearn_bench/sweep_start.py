"""What a sweep does before its first cell (a Hydra callback, ``hydra.callbacks.sweep_start``):
checks every cell's config, then fine-tunes every base model the cells use, as many at a time as
there are cores. Without it each cell builds the models it needs when it starts, and parallel
cells wait on one another's builds. Launchers that run cells on other machines (SLURM) and other
sweepers keep building in the cells."""

from __future__ import annotations

import logging

import torch
from hydra import compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

# Config keys whose sweep values never change a base model: one config is composed per rest.
NOT_FINETUNE = ("seed", "method", "attack", "defense", "recovery", "unlearn", "eval", "logger", "skip_completed")


class SweepStart(Callback):
    """Checks every cell of a local sweep (basic or joblib launcher, basic sweeper) and builds the
    base models they use, before the first cell starts."""

    def on_multirun_start(self, config: DictConfig, config_name: str | None = None, **kwargs) -> None:
        launcher, sweeper = str(config.hydra.launcher.get("_target_")), str(config.hydra.sweeper.get("_target_"))
        if "submitit" in launcher or not sweeper.endswith("BasicSweeper"):
            return
        from unlearn_bench.console import one_line_errors  # torch, Lightning: not for a bad override
        from unlearn_bench.finetune import ROLES, build_models, cached_model_dir, given_model
        from unlearn_bench.preflight import check_cell

        jobs = sweep_jobs(config)
        folder = f"paths.output_dir={config.hydra.sweep.dir}"  # each cell's own is made when it runs
        with one_line_errors():
            for overrides in distinct(jobs, ("seed",)):  # a seed never makes a config invalid
                check_cell(compose(config_name, [*overrides, folder]))
        missing = {}
        for overrides in distinct(jobs, NOT_FINETUNE):
            cfg = compose(config_name, [*overrides, folder])
            source = instantiate(cfg.data.source)
            for role in (r for r in ROLES if given_model(cfg, r) is None):
                model_dir = cached_model_dir(cfg, source, role)
                if not model_dir.is_dir():
                    missing.setdefault(model_dir, (cfg, role))
        if missing:
            at_once = max(1, min(len(missing), torch.get_num_threads()))  # a small model gains more this way
            log.info("Fine-tuning the sweep's %d base models first, %d at a time", len(missing), at_once)
            build_models(list(missing.values()), at_once)


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """Each cell's overrides, as Hydra's basic sweeper expands them."""
    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    arguments = [*params, *OmegaConf.to_container(config.hydra.overrides.task)]
    overrides = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def distinct(jobs: list[list[str]], ignored: tuple[str, ...]) -> list[list[str]]:
    """The jobs without the overrides of the top-level keys ``ignored``, each once."""
    key = lambda override: override.lstrip("+~").split("=")[0].split(".")[0].split("/")[0]
    return [list(job) for job in dict.fromkeys(tuple(o for o in job if key(o) not in ignored) for job in jobs)]
