"""Lightning callbacks for the unlearning stage."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import lightning as L
from datasets import Dataset

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.eval.evaluate import rouge_lower_bound, score_set


class StopAtUnlearn(L.Callback):
    """Stops unlearning once the forget set's ROUGE-L recall of greedy answers falls to ``target``.

    Gradient-ascent methods keep forgetting (and losing utility) for as long as they run, and
    how fast varies a lot across seeds; stopping at a target Unlearn score compares runs (seeds,
    attacks, defenses) at a matched amount of forgetting instead of a matched step count.

    A check generates answers to the whole forget set, which costs several training steps at any
    scale, so checks come only when they may find the target reached. Between checks the callback
    follows a free signal of how far unlearning has moved the model: ``progress``, the mean over
    the training splits of how much the share of answer tokens the model predicts (teacher-forced
    argmax agreement, a by-product of each step, averaged over the last epoch's batches) has
    changed since the first step: forget answers fall, IDK's refusals rise. Each check's recall
    and the progress it came at give, through the previous check's (or the start's: progress 0,
    recall 1), the progress at which recall should reach the target; the next check comes there,
    at least ``every_n_steps`` and at most ``max_gap_steps`` after the last, and every
    ``every_n_steps`` once recall is within ``NEAR`` of the target (so the stop lands where
    checking every ``every_n_steps`` would). A check first tries the exact teacher-forced lower
    bound of the recall (:func:`~unlearn_bench.eval.evaluate.rouge_lower_bound`): above the
    target, nothing needs generating. The stop itself is decided by the generated ROUGE-L recall,
    the score the final eval reports (and reuses: :meth:`final_scores`). Its module must return the
    agreement (``ComposedLossModule(..., agreement=True)``).

    A run whose checks have not improved on their best by ``MIN_DELTA`` for ``patience_epochs``
    epochs has stalled short of the target (a defense that stops forgetting, NPO climbing back):
    it stops there (``stalled``) instead of training on to the epoch cap.
    """

    PROGRESS_STEP = 0.05  # progress between checks until recall is seen to fall
    NEAR = 0.05  # recall this close above the target: check every every_n_steps
    MIN_DELTA = 0.01  # a recall lower than the best by less than this is not progress

    def __init__(
        self,
        encoder: QAEncoder,
        forget: Dataset,
        target: float,
        every_n_steps: int,
        batch_size: int,
        max_new_tokens: int,
        max_gap_steps: int = 20,
        patience_epochs: int | None = None,
        generation_batch_size: int | None = None,
    ):
        """``batch_size``: rows of the teacher-forced bound's batches; ``generation_batch_size``
        (None: ``batch_size``): answers generated at once."""
        self.encoder, self.forget, self.target = encoder, forget, target
        self.every_n_steps, self.max_gap_steps, self.patience_epochs = every_n_steps, max_gap_steps, patience_epochs
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.generation_batch_size = generation_batch_size or batch_size
        self.reached = self.stalled = False  # whether the run stopped at the target; stopped for lack of progress
        self.best, self.best_step = math.inf, 0  # the lowest value checked (improved by MIN_DELTA) and its step
        self.seconds, self.checks, self.generated = 0.0, 0, 0  # time in checks; checks; those that generated
        self.scores: dict | None = None  # score_set's scores of the forget set, when the last check generated in full
        self.agreement: dict[str, deque[float]] = {}  # per split, over the last epoch's batches
        self.start: dict[str, float] = {}  # per split, at the first step
        self.checked: list[tuple[float, float]] = [(0.0, 1.0)]  # (progress, recall) at the start and each check
        self.last_step, self.due = 0, 0.0  # the first check at every_n_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        epoch = max(1, int(trainer.num_training_batches))
        for split, value in outputs["agreement"].items():
            self.start.setdefault(split, float(value))
            self.agreement.setdefault(split, deque(maxlen=epoch)).append(float(value))
        since = trainer.global_step - self.last_step
        progress = self.progress()
        if since < self.every_n_steps or (progress < self.due and since < self.max_gap_steps):
            return
        start = time.perf_counter()
        recall, generated = self.check(pl_module.model)
        self.seconds += time.perf_counter() - start
        self.last_step = trainer.global_step
        if recall <= self.target:
            trainer.should_stop = self.reached = True
        elif self.has_stalled(trainer, recall, first_generated=generated and self.generated == 1):
            trainer.should_stop = self.stalled = True
        elif generated:
            # Near the target, where recall wanders up and down, every ``every_n_steps``.
            self.due = -math.inf if recall - self.target <= self.NEAR else self.crossing(progress, recall)
            self.checked.append((progress, recall))
        else:
            self.due = progress + self.PROGRESS_STEP

    def has_stalled(self, trainer, recall: float, first_generated: bool) -> bool:
        """Whether ``patience_epochs`` epochs have passed since this check's value (the recall, or
        its lower bound before anything was generated) last fell ``MIN_DELTA`` below its best. The
        first generated recall starts a new best (a bound is lower than the recall it bounds)."""
        if first_generated or recall < self.best - self.MIN_DELTA:
            self.best, self.best_step = recall, trainer.global_step
            return False
        if self.patience_epochs is None:
            return False
        steps_per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        return trainer.global_step - self.best_step >= self.patience_epochs * steps_per_epoch

    def final_scores(self, step: int) -> dict | None:
        """The forget set's scores at ``step`` (the model's last) if a check generated them in full
        there: the eval reuses them instead of generating the same answers again."""
        return self.scores if self.last_step == step else None

    def progress(self) -> float:
        """Mean over splits of |agreement over the last epoch − agreement at the first step|."""
        moved = [abs(sum(window) / len(window) - self.start[split]) for split, window in self.agreement.items()]
        return sum(moved) / len(moved)

    def check(self, model) -> tuple[float, bool]:
        """The generated recall, or its lower bound if that is above the target; and whether generated.
        Once a bound has fallen to the target, later ones (unlearning goes on) are not tried."""
        self.checks += 1
        self.scores = None
        if not self.generated:
            bound = rouge_lower_bound(model, self.encoder, self.forget, self.batch_size)
            if bound > self.target:
                return bound, False
        self.generated += 1
        self.scores = score_set(
            model,
            self.encoder,
            self.forget,
            batch_size=self.generation_batch_size,
            max_new_tokens=self.max_new_tokens,
            desc=None,
        )
        return self.scores["rougeL_recall"], True

    def crossing(self, progress: float, recall: float) -> float:
        """The progress at which recall should reach the target: on the line through this check and
        the last generated one it fell from (or the start); ``PROGRESS_STEP`` on if it has not fallen."""
        for before, recall_before in (self.checked[-1], self.checked[0]):
            if recall_before > recall and progress > before:
                return progress + (recall - self.target) * (progress - before) / (recall_before - recall)
        return progress + self.PROGRESS_STEP


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
