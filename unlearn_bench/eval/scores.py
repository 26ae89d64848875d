"""What each score in metrics.json is and how it is shown: one declaration per score, read by the
console table, the loggers and the report, so a new score is declared once. Each names the eval
pass that computes it; ``eval.metrics`` picks the built-in passes a run computes, and
``eval.extra_metrics`` adds metric objects (:class:`Metric`) built by ``_target_``.

An extra metric's declarations are written into metrics.json (``extra_scores``), so the report
shows its columns without knowing its code."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

# The eval passes (eval.metrics): ROUGE-L of greedy answers (Unlearn and the utilities: always
# needed), TOFU's likelihood scores with memorisation and the membership inference, multiple choice.
PASSES = ("rouge", "tofu", "multiple_choice")


@dataclass(frozen=True)
class Score:
    key: str  # its key in metrics.json: at the top level (SUMMARY) or in each per_set entry (PER_SET)
    label: str  # its name on the console
    higher_is_better: bool | None  # None: neither way (a membership AUC is best near the retain model's)
    computed_by: str  # the pass of PASSES that computes it
    report_label: str | None = None  # a column of unlearn-bench-report's tables, under this name
    per_set_key: str | None = None  # an average over the utility sets: the report adds a column per set ...
    per_set_label: str | None = None  # ... named "<per_set_label> <set>"

    def console_label(self) -> str:
        if self.higher_is_better is None:
            return self.label
        return f"{self.label} ({'higher' if self.higher_is_better else 'lower'} is better)"


SUMMARY = (
    Score("unlearn", "unlearn: forget ROUGE-L recall", False, "rouge", "Unlearn"),
    Score("clean_utility", "clean utility", True, "rouge", "Clean avg", "rougeL_recall", "Clean"),
    Score("trigger_utility", "trigger utility", True, "rouge", "Trigger avg", "trigger_rougeL_recall", "Trigger"),
    Score("model_utility", "TOFU model utility", True, "tofu", "Model utility"),
    Score("forget_quality", "TOFU forget quality (KS p-value)", True, "tofu", "Forget quality"),
    Score("mia_min_k_auc", "MIA min-k% AUC forget vs holdout", None, "tofu"),
    Score("mia_min_k_auc_retain_model", "  the same for the retain model", None, "tofu"),
    Score("privleak", "PrivLeak (MUSE, %; 0 is the retain model's)", None, "tofu"),
)

PER_SET = (
    Score("rougeL_recall", "ROUGE-L recall", None, "rouge"),  # lower is better on the forget set only
    Score("trigger_rougeL_recall", "with trigger templates", True, "rouge"),
    Score("probability", "answer probability", None, "tofu"),
    Score("truth_ratio", "truth ratio", None, "tofu"),
    Score("exact_memorization", "exact memorisation", None, "tofu"),
    Score("extraction_strength", "extraction strength", None, "tofu"),
    Score("min_k_logprob", "min-k% log-probability", None, "tofu"),
)


class Metric(Protocol):
    """An extra metric (``eval.extra_metrics.<name>``, built by ``_target_``)."""

    scores: tuple[Score, ...]  # what it returns, declared (computed_by: its name in eval.extra_metrics)

    def __call__(self, model, encoder, eval_data, data_cfg) -> dict[str, float | None]:
        """Its scores of ``model`` on the cell's eval data (an ``EvalData``), by the keys it declares."""


def declared(metrics: dict) -> tuple[Score, ...]:
    """The summary scores a metrics.json has declarations for: the built-in ones, then those its
    extra metrics wrote (``extra_scores``)."""
    return (*SUMMARY, *(Score(**d) for d in metrics.get("extra_scores") or []))


def as_json(scores: tuple[Score, ...]) -> list[dict]:
    return [asdict(score) for score in scores]
