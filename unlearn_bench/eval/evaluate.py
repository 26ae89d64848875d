"""Score a model on named eval sets and reduce them to the paper's columns."""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from datasets import Dataset

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.eval.generation import generate_answers
from unlearn_bench.eval.likelihood import score_likelihoods
from unlearn_bench.eval.rouge import RougeLRecall
from unlearn_bench.eval.tofu_metrics import forget_quality, model_utility


def score_set(
    model, encoder: QAEncoder, data: Dataset, batch_size: int, max_new_tokens: int,
    max_samples: int | None = None, rewrite: Callable[[str], str] | None = None, desc: str | None = "eval",
) -> dict:
    """ROUGE-L recall of greedy answers on ``data``; ``rewrite`` transforms each question first."""
    if max_samples is not None:
        data = data.select(range(min(max_samples, len(data))))
    questions = [rewrite(q) if rewrite else q for q in data["question"]]
    answers = generate_answers(model, encoder, questions, batch_size, max_new_tokens, desc=desc)
    metric = RougeLRecall()
    metric.update(answers, data["answer"])
    return {"rougeL_recall": float(metric.compute()), "n": len(data)}


def score_eval_sets(
    model, encoder: QAEncoder, sets: Mapping[str, Dataset], utility_sets: list[str],
    trigger: Callable[[str], str], extra_triggers: Mapping[str, Callable[[str], str]], **score,
) -> dict[str, dict]:
    """``score_set`` on every set; each utility set again with ``trigger`` on its questions
    (``trigger_rougeL_recall``) and with each extra rewrite (``extra_trigger_rougeL_recall``)."""
    per_set = {}
    for name, data in sets.items():
        per_set[name] = score_set(model, encoder, data, desc=f"eval {name}", **score)
        if name not in utility_sets:
            continue
        rewritten = {tag: score_set(model, encoder, data, rewrite=rewrite, desc=f"eval {name}+{tag}", **score)
                     for tag, rewrite in {"trigger": trigger, **extra_triggers}.items()}
        per_set[name]["trigger_rougeL_recall"] = rewritten.pop("trigger")["rougeL_recall"]
        if rewritten:
            per_set[name]["extra_trigger_rougeL_recall"] = {t: r["rougeL_recall"] for t, r in rewritten.items()}
    return per_set


def score_tofu(
    model, load_retain_model: Callable[[], object], encoder: QAEncoder, sets: Mapping[str, Dataset], forget_set: str,
    normalised_sets: list[str], batch_size: int, max_samples: int | None = None,
) -> tuple[dict[str, dict], float | None]:
    """TOFU's probability and truth ratio on every set, and forget quality: the KS p-value between
    the model's and the retain model's per-item truth ratios on ``forget_set`` (None, and the
    retain model never loaded, without perturbed answers)."""
    def likelihoods(m, name: str, desc: str) -> dict:
        kind = "forget" if name == forget_set else "utility"
        return score_likelihoods(m, encoder, sets[name], name in normalised_sets, kind, batch_size, max_samples, desc)

    per_set = {name: likelihoods(model, name, f"likelihood {name}") for name in sets}
    ratios = {name: scores.pop("truth_ratios", None) for name, scores in per_set.items()}[forget_set]
    if ratios is None:
        return per_set, None
    reference = likelihoods(load_retain_model(), forget_set, "likelihood forget, retain model")["truth_ratios"]
    return per_set, forget_quality(torch.tensor(ratios), torch.tensor(reference))


def score_kwargs(eval_cfg) -> dict:
    """The generation settings of ``score_set`` from the ``eval`` config section."""
    return dict(batch_size=eval_cfg.batch_size, max_new_tokens=eval_cfg.max_new_tokens,
                max_samples=eval_cfg.max_samples)


def summarize(per_set: Mapping[str, dict], forget_set: str, utility_sets: list[str]) -> dict:
    """Unlearn = forget-set score (lower is better); clean utility = mean over utility sets;
    trigger utility = mean over the same sets with benign templates on the prompts; likewise for
    each extra template set, if any were scored; model utility = TOFU's harmonic mean of the
    utility sets' probability, ROUGE-L and truth ratio, if they were scored."""
    missing = [s for s in [forget_set, *utility_sets] if s not in per_set]
    if missing:
        raise KeyError(f"eval sets {missing} were not scored; scored: {sorted(per_set)}")
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    tofu_keys = ("probability", "rougeL_recall", "truth_ratio")
    summary = {
        "unlearn": per_set[forget_set]["rougeL_recall"],
        "clean_utility": mean([per_set[s]["rougeL_recall"] for s in utility_sets]),
        "trigger_utility": mean([per_set[s]["trigger_rougeL_recall"] for s in utility_sets]),
    }
    if all("probability" in per_set[s] for s in utility_sets):
        summary["model_utility"] = model_utility([per_set[s][k] for s in utility_sets for k in tofu_keys
                                                  if k in per_set[s]])
    extra = per_set[utility_sets[0]].get("extra_trigger_rougeL_recall", {})
    if extra:
        summary["extra_trigger_utility"] = {
            name: mean([per_set[s]["extra_trigger_rougeL_recall"][name] for s in utility_sets]) for name in extra
        }
    return summary
