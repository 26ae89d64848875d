"""ROUGE-L recall on hand-made cases: LCS(pred, ref) / |ref| in (stemmed, lower-cased) words;
and the reduction of per-set scores to the table's columns."""

import pytest

from unlearn_bench.eval.evaluate import summarize
from unlearn_bench.eval.rouge import RougeLRecall


def recall(pred, ref):
    metric = RougeLRecall()
    metric.update([pred], [ref])
    return metric.compute().item()


@pytest.mark.parametrize(
    "pred, ref, expected",
    [
        ("Ada was born in Oslo.", "Ada was born in Oslo.", 1.0),
        ("Ada was born in Lima.", "Ada was born in Oslo.", 4 / 5),
        ("born Ada", "Ada was born", 1 / 3),  # order matters: LCS is one word
        ("Oslo", "Ada was born in Oslo.", 1 / 5),
        ("", "Ada was born in Oslo.", 0.0),  # empty answer
        ("ada WAS born in oslo and then moved far away to lima", "Ada was born in Oslo.", 1.0),  # longer answer
        ("She writes novels", "She wrote a novel", 2 / 4),  # stemming: novels -> novel
    ],
)
def test_rouge_l_recall_matches_hand_computation(pred, ref, expected):
    assert recall(pred, ref) == pytest.approx(expected)


def test_metric_averages_over_samples_and_keeps_each_score():
    metric = RougeLRecall()
    metric.update(["a b", "x"], ["a b", "a b"])
    metric.update(["a"], ["a b"])
    assert metric.per_sample().tolist() == pytest.approx([1.0, 0.0, 0.5])
    assert metric.compute().item() == pytest.approx(0.5)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 predictions for 1"):
        RougeLRecall().update(["a", "b"], ["a"])


def test_summarize_reduces_sets_to_the_paper_columns():
    per_set = {
        "forget": {"rougeL_recall": 0.2},
        "retain": {"rougeL_recall": 0.8, "trigger_rougeL_recall": 0.4, "extra_trigger_rougeL_recall": {"unseen": 0.6}},
        "world": {"rougeL_recall": 0.6, "trigger_rougeL_recall": 0.5, "extra_trigger_rougeL_recall": {"unseen": 0.2}},
    }
    summary = summarize(per_set, "forget", ["retain", "world"])
    extra = summary.pop("extra_trigger_utility")
    assert summary == pytest.approx({"unlearn": 0.2, "clean_utility": 0.7, "trigger_utility": 0.45})
    assert extra == pytest.approx({"unseen": 0.4})
    del per_set["retain"]["extra_trigger_rougeL_recall"], per_set["world"]["extra_trigger_rougeL_recall"]
    assert "extra_trigger_utility" not in summarize(per_set, "forget", ["retain", "world"])
    with pytest.raises(KeyError, match="nope"):
        summarize(per_set, "forget", ["nope"])


def test_cached_stems_score_exactly_as_torchmetrics_stemmer():
    """The per-word stem cache must not change a score: torchmetrics' own ``use_stemmer=True`` on
    the synthetic data's answers against each other, punctuation, digits, case and empty strings."""
    from torchmetrics.functional.text.rouge import rouge_score

    from unlearn_bench.data.synthetic import generate

    answers = [row["answer"] for row in generate(num_authors=6)["full"]][:60]
    preds = [*answers[1:], "", "  ", "Running, runs; RAN!! 1999's", "The novelists' novels.", "ab-cd ef_gh"]
    refs = [*answers[:-1], "x", "Ada", "runner running run 1999", "novel novelist", "ab cd ef gh"]
    metric = RougeLRecall()
    metric.update(preds, refs)
    expected = [
        rouge_score(p, r, rouge_keys="rougeL", use_stemmer=True)["rougeL_recall"].item() for p, r in zip(preds, refs)
    ]
    assert metric.per_sample().tolist() == pytest.approx(expected, abs=0)
    assert 0 < sum(expected) < len(expected)  # neither all matches nor all misses
