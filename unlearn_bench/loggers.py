"""What a cell sends to its loggers besides the per-step losses: the resolved config first, the
final metrics at the end, and for W&B the per-set results as a ``wandb.Table`` and the curve as an
image, so that a W&B dashboard can compare cells without opening their run directories."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from unlearn_bench.eval.scores import PER_SET

RESULT_COLUMNS = (*(score.key for score in PER_SET), "n")  # the per-set results table


def log_config(loggers: list[Logger], cfg: DictConfig) -> None:
    """The full resolved config, as each logger's hyperparameters."""
    config = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(config)


def final_scalars(metrics: dict) -> dict[str, float]:
    """Every number of metrics.json under ``final/``: the top-level scores, ``final/<set>/<key>``
    per eval set and ``final/multiple_choice/<set>/<key>`` per multiple-choice set."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    out = {f"final/{k}": v for k, v in metrics.items() if number(v)}
    groups = ((metrics["per_set"], "final"), (metrics.get("multiple_choice") or {}, "final/multiple_choice"))
    for group, prefix in groups:
        for name, scores in group.items():
            out |= {f"{prefix}/{name}/{k}": v for k, v in scores.items() if number(v)}
    return out


def log_results(loggers: list[Logger], metrics: dict, step: int, curve_png: Path | None) -> None:
    """The final metrics on every logger; on W&B also the per-set table and the curve image. Each
    logger is then closed (a W&B run must finish, or the next cell of a sweep would reuse it)."""
    scalars = final_scalars(metrics)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            # fit closed its event file; a writer reopened within the same second would reuse the
            # file name and truncate the training curves, so the final scores go to a sub-run
            logger = TensorBoardLogger(
                logger.save_dir, logger.name, logger.version, sub_dir="final", default_hp_metric=False
            )
        logger.log_metrics(scalars, step=step)
        if isinstance(logger, WandbLogger):
            rows = [[name, *(scores.get(k) for k in RESULT_COLUMNS)] for name, scores in metrics["per_set"].items()]
            logger.log_table("results", columns=["set", *RESULT_COLUMNS], data=rows, step=step)
            if curve_png is not None:
                logger.log_image("curve", [str(curve_png)], step=step)
            logger.experiment.summary.update(scalars)
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()
