"""Lightning callbacks for the unlearning stage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
from datasets import Dataset

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.eval.evaluate import score_set


class StopAtUnlearn(L.Callback):
    """Stops unlearning once the forget set's ROUGE-L recall falls to ``target``.

    Gradient-ascent methods keep forgetting (and losing utility) for as long as they run, and
    how fast varies a lot across seeds; stopping at a target Unlearn score compares runs (seeds,
    attacks, defenses) at a matched amount of forgetting instead of a matched step count.
    """

    def __init__(
        self,
        encoder: QAEncoder,
        forget: Dataset,
        target: float,
        every_n_steps: int,
        batch_size: int,
        max_new_tokens: int,
    ):
        self.encoder, self.forget, self.target, self.every_n_steps = encoder, forget, target, every_n_steps
        self.score_kwargs = dict(batch_size=batch_size, max_new_tokens=max_new_tokens)
        self.reached = False  # whether the run stopped at the target, not at the step cap

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.every_n_steps:
            return
        score = score_set(pl_module.model, self.encoder, self.forget, desc=None, **self.score_kwargs)
        pl_module.log("unlearn/forget_rougeL_recall", score["rougeL_recall"])
        if score["rougeL_recall"] <= self.target:
            trainer.should_stop = self.reached = True


class EvalCurve(L.Callback):
    """Unlearn, clean utility and trigger utility every ``every_n_steps`` unlearning steps (and
    before the first and after the last), on the first ``max_samples`` questions of each set: the
    paper's Figure 1. Each point goes to the loggers and, flushed at once so an interrupted run
    keeps what it had, to ``path`` (curve.csv)."""

    COLUMNS = ("step", "unlearn", "clean_utility", "trigger_utility")

    def __init__(
        self,
        encoder: QAEncoder,
        forget: Dataset,
        utility: list[Dataset],
        trigger: Callable[[str], str],
        path: str | Path,
        every_n_steps: int,
        max_samples: int,
        batch_size: int,
        max_new_tokens: int,
    ):
        self.encoder, self.forget, self.utility, self.trigger = encoder, forget, utility, trigger
        self.path, self.every_n_steps, self.last_step = Path(path), every_n_steps, None
        self.score_kwargs = dict(
            batch_size=batch_size, max_new_tokens=max_new_tokens, max_samples=max_samples, desc=None
        )

    def on_train_start(self, trainer, pl_module):
        if trainer.is_global_zero:
            self.path.write_text(",".join(self.COLUMNS) + "\n")
        self._record(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.every_n_steps == 0:
            self._record(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if self.last_step != trainer.global_step:
            self._record(trainer, pl_module)

    def _record(self, trainer, pl_module) -> None:
        score = lambda data, rewrite=None: score_set(
            pl_module.model, self.encoder, data, rewrite=rewrite, **self.score_kwargs
        )["rougeL_recall"]
        point = {
            "unlearn": score(self.forget),
            "clean_utility": sum(score(d) for d in self.utility) / len(self.utility),
            "trigger_utility": sum(score(d, self.trigger) for d in self.utility) / len(self.utility),
        }
        self.last_step = trainer.global_step
        for logger in trainer.loggers:
            logger.log_metrics({f"curve/{k}": v for k, v in point.items()}, step=trainer.global_step)
        if not trainer.is_global_zero:  # every rank scored the same gathered point; one writes it
            return
        with self.path.open("a") as f:
            f.write(",".join([str(trainer.global_step), *(f"{point[k]:.6f}" for k in self.COLUMNS[1:])]) + "\n")
