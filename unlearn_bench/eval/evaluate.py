"""Score a model on named eval sets and reduce them to the paper's columns."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import NamedTuple

import torch
from datasets import Dataset
from hydra.utils import instantiate
from omegaconf import OmegaConf

from unlearn_bench.data.multiple_choice import load_multiple_choice
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.data.source import TofuSource, head
from unlearn_bench.data.templates import HashedTemplate
from unlearn_bench.eval.generation import generate_answers
from unlearn_bench.eval.likelihood import answer_tokens, score_likelihoods, score_memorization
from unlearn_bench.eval.memorization import membership_auc, privleak
from unlearn_bench.eval.multiple_choice import score_multiple_choice
from unlearn_bench.eval.rouge import RougeLRecall
from unlearn_bench.eval.scores import PASSES, SUMMARY, as_json
from unlearn_bench.eval.tofu_metrics import forget_quality, model_utility

log = logging.getLogger(__name__)


def score_set(
    model,
    encoder: QAEncoder,
    data: Dataset,
    batch_size: int,
    max_new_tokens: int,
    max_samples: int | None = None,
    rewrite: Callable[[str], str] | None = None,
    desc: str | None = "eval",
) -> dict:
    """ROUGE-L recall of greedy answers on ``data``; ``rewrite`` transforms each question first.
    A set with a ``probe`` column (RWKU-style probes) also gets the recall per probe type.

    Generation stops at ``max_new_tokens``, raised to fit the set's longest reference answer (a cap
    below it would cut answers and lower recall silently); ``at_cap`` is the share of answers that
    hit the cap without an end-of-sequence token, with a warning above 25%."""
    data = head(data, max_samples)
    questions = [rewrite(q) if rewrite else q for q in data["question"]]
    cap = max(max_new_tokens, longest_answer(encoder, data["answer"]))
    metric, answers = generated_recall(model, encoder, questions, data["answer"], batch_size, cap, desc)
    at_cap = sum(a.at_cap for a in answers) / max(len(answers), 1)
    scores = {"rougeL_recall": float(metric.compute()), "n": len(data), "max_new_tokens": cap, "at_cap": at_cap}
    warn_at_cap(scores, desc)
    if "probe" in data.column_names:
        recall, probes = metric.per_sample(), data["probe"]
        scores["rougeL_recall_by_probe"] = {
            p: recall[[i for i, q in enumerate(probes) if q == p]].mean().item() for p in sorted(set(probes))
        }
    return scores


def warn_at_cap(scores: dict, desc: str | None) -> None:
    """The warning of :func:`score_set` when over 25% of its answers stopped at the cap."""
    if scores["at_cap"] > 0.25 and desc is not None:
        log.warning(
            "%s: %.0f%% of the greedy answers stopped at the cap of %d new tokens without an end-of-sequence "
            "token; if they are cut-off answers rather than rambling, ROUGE-L recall is underestimated: "
            "raise eval.max_new_tokens",
            desc,
            100 * scores["at_cap"],
            scores["max_new_tokens"],
        )


def generated_recall(
    model, encoder: QAEncoder, questions: list[str], references: list[str], batch_size: int, cap: int, desc=None
) -> tuple[RougeLRecall, list]:
    """ROUGE-L recall of the greedy answers to ``questions`` (at most ``cap`` new tokens) against
    ``references``, per row in the metric; and the answers."""
    answers = generate_answers(model, encoder, questions, batch_size, cap, desc=desc)
    metric = RougeLRecall()
    metric.update([a.text for a in answers], list(references))
    return metric, answers


def rouge_recalls(
    model, encoder: QAEncoder, questions: list[str], references: list[str], batch_size: int, max_new_tokens: int
) -> list[float]:
    """Each row's ROUGE-L recall as :func:`score_set` scores it (``max_new_tokens`` raised to the
    longest reference)."""
    cap = max(max_new_tokens, longest_answer(encoder, references))
    metric, _ = generated_recall(model, encoder, questions, references, batch_size, cap)
    return metric.per_sample().tolist()


def rouge_lower_bound(model, encoder: QAEncoder, data: Dataset, batch_size: int) -> float:
    """A lower bound on :func:`score_set`'s ROUGE-L recall from one teacher-forced pass, without
    generating.

    Greedy generation reproduces a reference answer up to the first token whose teacher-forced
    argmax is wrong, so the generated answer begins with that prefix: its words but the last
    (perhaps cut) one are words of the generated answer too, and their LCS with the reference
    is at most the generated answer's. An answer whose every token, EOS included, is the argmax
    is generated exactly."""
    answers = list(data["answer"])
    tokens = answer_tokens(model, encoder, list(data["question"]), answers, batch_size, desc=None)
    prefixes = []
    for answer, scored in zip(answers, tokens, strict=True):
        wrong = (~scored.correct).nonzero()
        if len(wrong) == 0 and scored.ends_with_eos:
            prefixes.append(answer)
            continue
        cut = int(wrong[0]) if len(wrong) else len(scored.correct)
        words = encoder.decode_answer(encoder.answer_ids(answer, eos=False)[:cut]).split()
        prefixes.append(" ".join(words[:-1]))
    metric = RougeLRecall()
    metric.update(prefixes, answers)
    return float(metric.compute())


def longest_answer(encoder: QAEncoder, answers: list[str]) -> int:
    """Tokens of the longest reference answer, end-of-sequence included."""
    return max((len(encoder.answer_ids(a)) for a in answers), default=0)


def score_eval_sets(
    model,
    encoder: QAEncoder,
    sets: Mapping[str, Dataset],
    utility_sets: list[str],
    trigger: Callable[[str], str],
    extra_triggers: Mapping[str, Callable[[str], str]],
    scored: Mapping[str, dict] | None = None,
    **score,
) -> dict[str, dict]:
    """``score_set`` on every set (those in ``scored`` already were, on this very model); each
    utility set again with ``trigger`` on its questions (``trigger_rougeL_recall``) and with each
    extra rewrite (``extra_trigger_rougeL_recall``)."""
    per_set = {}
    for name, data in sets.items():
        if scored and name in scored:
            per_set[name] = dict(scored[name])
            warn_at_cap(per_set[name], f"eval {name}")
        else:
            per_set[name] = score_set(model, encoder, data, desc=f"eval {name}", **score)
        if name not in utility_sets:
            continue
        rewritten = {
            tag: score_set(model, encoder, data, rewrite=rewrite, desc=f"eval {name}+{tag}", **score)
            for tag, rewrite in {"trigger": trigger, **extra_triggers}.items()
        }
        per_set[name]["trigger_rougeL_recall"] = rewritten.pop("trigger")["rougeL_recall"]
        if rewritten:
            per_set[name]["extra_trigger_rougeL_recall"] = {t: r["rougeL_recall"] for t, r in rewritten.items()}
    return per_set


def score_tofu(
    model,
    reference: Callable[[], dict] | None,
    encoder: QAEncoder,
    sets: Mapping[str, Dataset],
    forget_set: str,
    normalised_sets: list[str],
    holdout: Dataset | None,
    batch_size: int,
    max_samples: int | None = None,
    min_k: float = 0.4,
) -> tuple[dict[str, dict], dict]:
    """Likelihood metrics on every set (TOFU's probability and truth ratio, exact memorisation,
    extraction strength, min-k% log-probability), and the scores that compare with the retain model
    (which never saw the forget set), through ``reference`` (:func:`retain_reference`, asked for
    only if needed): forget quality, the KS p-value between its and the model's per-item truth
    ratios on ``forget_set``; and the min-k% membership-inference AUC forget vs ``holdout`` for both
    models, with MUSE's PrivLeak between them (all None without a reference)."""

    def likelihoods(name: str) -> dict:
        kind, desc = ("forget" if name == forget_set else "utility"), f"likelihood {name}"
        normalise = name in normalised_sets
        return score_likelihoods(model, encoder, sets[name], normalise, kind, batch_size, max_samples, desc, min_k)

    per_set = {name: likelihoods(name) for name in sets}
    ratios = {name: scores.pop("truth_ratios", None) for name, scores in per_set.items()}[forget_set]
    members = {name: scores.pop("min_k_logprobs") for name, scores in per_set.items()}[forget_set]
    top = dict.fromkeys(("forget_quality", "mia_min_k_auc", "mia_min_k_auc_retain_model", "privleak"))
    if (ratios is None and holdout is None) or reference is None:
        return per_set, top
    retain = reference()
    if ratios is not None:
        top["forget_quality"] = forget_quality(torch.tensor(ratios), torch.tensor(retain["truth_ratios"]))
    if holdout is not None:
        auc = membership(model, encoder, members, holdout, batch_size, max_samples, min_k, "likelihood holdout")
        auc_retain = retain["mia_min_k_auc"]
        top |= {"mia_min_k_auc": auc, "mia_min_k_auc_retain_model": auc_retain, "privleak": privleak(auc, auc_retain)}
    return per_set, top


def retain_reference(
    retain_model,
    encoder: QAEncoder,
    forget: Dataset,
    normalised: bool,
    holdout: Dataset | None,
    batch_size: int,
    max_samples: int | None = None,
    min_k: float = 0.4,
) -> dict:
    """What :func:`score_tofu` compares a model with, from the retain model alone: its per-item truth
    ratios on the forget set (None without perturbed answers) and its min-k% membership-inference
    AUC forget vs ``holdout`` (None without one). The same for every cell on one retain model, so a
    cell takes it from a cache (:func:`~unlearn_bench.finetune.cached_retain_reference`)."""
    desc = "likelihood forget, retain model"
    scores = score_likelihoods(
        retain_model, encoder, forget, normalised, "forget", batch_size, max_samples, desc, min_k
    )
    auc = None
    if holdout is not None:
        desc = "likelihood holdout, retain model"
        auc = membership(retain_model, encoder, scores["min_k_logprobs"], holdout, batch_size, max_samples, min_k, desc)
    return {"truth_ratios": scores.get("truth_ratios"), "mia_min_k_auc": auc}


def membership(
    model, encoder: QAEncoder, members: list[float], holdout: Dataset, batch_size: int, max_samples, min_k, desc
) -> float:
    """The min-k% membership-inference AUC of ``model``: the forget set's scores ``members`` against
    the holdout's."""
    data = head(holdout, max_samples)
    tokens = answer_tokens(model, encoder, list(data["question"]), list(data["answer"]), batch_size, desc)
    nonmembers = score_memorization(tokens, min_k)["min_k_logprobs"]
    return membership_auc(torch.tensor(members), torch.tensor(nonmembers))


def score_multiple_choice_sets(
    model,
    encoder: QAEncoder,
    sets: Mapping[str, Dataset],
    rewrites: Mapping[str, Callable[[str], str]],
    batch_size: int,
    max_samples: int | None = None,
) -> dict[str, dict]:
    """Accuracy on each multiple-choice set, plain and with each rewrite of the questions (the
    trigger templates: ``trigger_accuracy``; extra template sets: ``extra_trigger_accuracy``)."""
    out = {}
    for name, data in sets.items():
        desc = f"multiple choice {name}"
        out[name] = score_multiple_choice(model, encoder, data, batch_size, max_samples, None, desc)
        tagged = {
            tag: score_multiple_choice(model, encoder, data, batch_size, max_samples, rewrite, f"{desc}+{tag}")[
                "accuracy"
            ]
            for tag, rewrite in rewrites.items()
        }
        out[name]["trigger_accuracy"] = tagged.pop("trigger")
        if tagged:
            out[name]["extra_trigger_accuracy"] = tagged
    return out


class EvalData(NamedTuple):
    """Every set a cell is scored on, loaded once."""

    eval_sets: dict[str, Dataset]
    multiple_choice_sets: dict[str, Dataset]
    holdout: Dataset | None


def load_eval_data(data_cfg, source: TofuSource) -> EvalData:
    """The eval sets, multiple-choice sets and holdout split that ``data_cfg`` names."""
    holdout = None
    if data_cfg.holdout_split is not None:
        try:
            holdout = source.load(data_cfg.holdout_split)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"{e}. It is the membership inference's holdout split; point "
                f"data.holdout_split at one, or set data.holdout_split=null to skip it"
            ) from None
    return EvalData(
        {name: source.load(split) for name, split in data_cfg.eval_sets.items()},
        {
            name: load_multiple_choice(spec if isinstance(spec, str) else OmegaConf.to_container(spec), source)
            for name, spec in data_cfg.multiple_choice_sets.items()
        },
        holdout,
    )


def evaluate_model(
    model,
    encoder: QAEncoder,
    eval_cfg,
    data_cfg,
    data: EvalData,
    reference: Callable[[], dict] | None,
    scored: Mapping[str, dict] | None = None,
) -> dict:
    """Every metric of a cell on one model: the paper's columns, TOFU's, privacy and extraction,
    per eval set and multiple-choice set (what metrics.json carries besides the run's bookkeeping).
    ``scored``: eval sets' ``score_set`` scores already computed on this model, with these eval
    settings (the stop check's last generation)."""
    trigger = HashedTemplate(eval_cfg.trigger_templates)
    extra = {name: HashedTemplate(t) for name, t in eval_cfg.extra_trigger_templates.items()}
    utility_sets = list(data_cfg.utility_sets)
    per_set = score_eval_sets(
        model, encoder, data.eval_sets, utility_sets, trigger, extra, scored, **score_kwargs(eval_cfg)
    )
    passes = set(eval_cfg.get("metrics") or PASSES)  # eval.metrics: the passes to run (scores.py)
    top = {score.key: None for score in SUMMARY if score.computed_by == "tofu"}
    if "tofu" in passes:
        likelihoods, top = score_tofu(
            model,
            reference,
            encoder,
            data.eval_sets,
            data_cfg.forget_set,
            list(data_cfg.normalised_sets),
            data.holdout,
            eval_cfg.batch_size,
            eval_cfg.max_samples,
            eval_cfg.min_k,
        )
        for name, scores in likelihoods.items():
            per_set[name] |= scores
    multiple_choice = None
    if "multiple_choice" in passes:
        multiple_choice = score_multiple_choice_sets(
            model,
            encoder,
            data.multiple_choice_sets,
            {"trigger": trigger, **extra},
            eval_cfg.batch_size,
            eval_cfg.max_samples,
        )
    extra, extra_scores = {}, []
    for name, node in (eval_cfg.get("extra_metrics") or {}).items():
        metric = instantiate(node)
        values = metric(model, encoder, data, data_cfg)
        keys = [score.key for score in metric.scores]
        if set(values) != set(keys):
            raise ValueError(f"eval.extra_metrics.{name} returned {sorted(values)} but declares {keys}")
        extra |= values
        extra_scores += as_json(metric.scores)
    return {
        **summarize(per_set, data_cfg.forget_set, utility_sets),
        **top,
        **extra,
        "per_set": per_set,
        "multiple_choice": multiple_choice or None,
        **({"extra_scores": extra_scores} if extra_scores else {}),
    }


def score_kwargs(eval_cfg) -> dict:
    """The generation settings of ``score_set`` from the ``eval`` config section."""
    return dict(
        batch_size=generation_batch_size(eval_cfg),
        max_new_tokens=eval_cfg.max_new_tokens,
        max_samples=eval_cfg.max_samples,
    )


def generation_batch_size(eval_cfg) -> int:
    """Answers generated at once: ``eval.generation_batch_size``, or ``eval.batch_size`` if null."""
    return eval_cfg.get("generation_batch_size") or eval_cfg.batch_size


def summarize(per_set: Mapping[str, dict], forget_set: str, utility_sets: list[str]) -> dict:
    """Unlearn = forget-set score (lower is better); clean utility = mean over utility sets;
    trigger utility = mean over the same sets with benign templates on the prompts; likewise for
    each extra template set, if any were scored; model utility = TOFU's harmonic mean of the
    utility sets' probability, ROUGE-L and truth ratio, if they were scored."""
    missing = [s for s in [forget_set, *utility_sets] if s not in per_set]
    if missing:
        raise KeyError(f"eval sets {missing} were not scored; scored: {sorted(per_set)}")
    mean = lambda values: sum(values) / len(values)
    tofu_keys = ("probability", "rougeL_recall", "truth_ratio")
    summary = {
        "unlearn": per_set[forget_set]["rougeL_recall"],
        "clean_utility": mean([per_set[s]["rougeL_recall"] for s in utility_sets]),
        "trigger_utility": mean([per_set[s]["trigger_rougeL_recall"] for s in utility_sets]),
    }
    if all("probability" in per_set[s] for s in utility_sets):
        summary["model_utility"] = model_utility(
            [per_set[s][k] for s in utility_sets for k in tofu_keys if k in per_set[s]]
        )
    extra = per_set[utility_sets[0]].get("extra_trigger_rougeL_recall", {})
    if extra:
        summary["extra_trigger_utility"] = {
            name: mean([per_set[s]["extra_trigger_rougeL_recall"][name] for s in utility_sets]) for name in extra
        }
    return summary
