"""Lightning callbacks for the unlearning stage."""

from __future__ import annotations

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

    def __init__(self, encoder: QAEncoder, forget: Dataset, target: float, every_n_steps: int,
                 batch_size: int, max_new_tokens: int):
        self.encoder, self.forget, self.target, self.every_n_steps = encoder, forget, target, every_n_steps
        self.score_kwargs = dict(batch_size=batch_size, max_new_tokens=max_new_tokens)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.every_n_steps:
            return
        score = score_set(pl_module.model, self.encoder, self.forget, desc=None, **self.score_kwargs)
        pl_module.log("unlearn/forget_rougeL_recall", score["rougeL_recall"])
        if score["rougeL_recall"] <= self.target:
            trainer.should_stop = True
