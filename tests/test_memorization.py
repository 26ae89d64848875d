"""Min-k% membership scores, exact memorisation, extraction strength and the MIA AUC on hand-made
token scores; teacher-forced token scores and truncated generation on a unigram model."""

import math

import pytest
import torch
from datasets import Dataset

from conftest import unigram_model
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.eval.evaluate import rouge_lower_bound, score_set
from unlearn_bench.eval.likelihood import answer_tokens, score_memorization
from unlearn_bench.eval.memorization import (
    ExactMemorization,
    ExtractionStrength,
    MinKProbability,
    membership_auc,
    privleak,
)
from unlearn_bench.tokenizer import train_tokenizer

T, F = True, False


def test_min_k_averages_the_least_likely_share_of_tokens():
    metric = MinKProbability(k=0.4)
    metric.update(
        [
            torch.tensor([-1.0, -2.0, -3.0, -4.0, -5.0]),  # 40% of 5 = 2 tokens: (-5 - 4) / 2
            torch.tensor([-0.5, -7.0]),
        ]
    )  # int(0.8) = 0 -> at least one token: -7
    assert metric.per_sample().tolist() == pytest.approx([-4.5, -7.0])
    assert metric.compute().item() == pytest.approx((-4.5 - 7.0) / 2)
    with pytest.raises(ValueError, match="k in"):
        MinKProbability(k=0.0)


def test_exact_memorization_is_the_share_of_argmax_hits():
    metric = ExactMemorization()
    metric.update([torch.tensor([T, F, T, T]), torch.tensor([F])])
    assert metric.per_sample().tolist() == pytest.approx([0.75, 0.0])
    assert metric.compute().item() == pytest.approx(0.375)


@pytest.mark.parametrize(
    "correct, expected",
    [
        ([T, T, T, T], 1.0),  # the question alone extracts the answer
        ([F, T, T, T], 0.75),  # one token of prefix needed
        ([T, T, F, T], 0.25),  # an early hit does not count: the rest must follow
        ([T, T, T, F], 0.0),  # not even the last token
        ([T], 1.0),  # a one-token answer (an empty answer is EOS alone)
    ],
)
def test_extraction_strength_is_one_minus_the_needed_prefix_share(correct, expected):
    metric = ExtractionStrength()
    metric.update([torch.tensor(correct)])
    assert metric.compute().item() == pytest.approx(expected)


def test_an_answer_without_tokens_is_refused():
    for metric in (MinKProbability(), ExactMemorization(), ExtractionStrength()):
        with pytest.raises(ValueError, match="no tokens"):
            metric.update([torch.zeros(0)])


def test_membership_auc_and_privleak():
    members, holdout = torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])
    assert membership_auc(members, holdout) == pytest.approx(1.0)
    assert membership_auc(holdout, members) == pytest.approx(0.0)
    assert membership_auc(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 4.0])) == pytest.approx(0.25)  # 1 of 4 pairs
    # MUSE / open-unlearning: 100 (AUC_retain - AUC) / (1 - AUC_retain)
    assert privleak(0.9, 0.5) == pytest.approx(-80.0)  # forget set still recognisable: negative
    assert privleak(0.2, 0.6) == pytest.approx(100.0)  # over-unlearned: positive
    assert privleak(0.55, 0.55) == 0.0
    assert privleak(0.3, 1.0) is None  # relative to 1 - AUC_retain = 0: undefined, not a crash
    assert privleak(1.0, 1.0) == 0.0  # ... unless there is no difference at all
    with pytest.raises(ValueError, match="at least one"):
        membership_auc(members, torch.zeros(0))


@pytest.fixture(scope="module")
def unigram():
    """A model that always puts the same high logit (8) on the tokens of "alpha beta" and EOS."""
    tokenizer = train_tokenizer(["Who? alpha beta zulu"] * 3, 300)
    known = tokenizer(" alpha beta", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    return unigram_model(len(tokenizer), known), QAEncoder(tokenizer, "Q: {question}\nA:"), known


def test_answer_tokens_are_teacher_forced_scores_of_the_answer_and_eos(unigram):
    model, encoder, known = unigram
    tokens = answer_tokens(model, encoder, ["Who?", "Who?"], ["alpha beta", "zulu"])
    vocab = len(encoder.tokenizer)
    log_p_known = 8 - math.log(len(known) * math.exp(8) + vocab - len(known))
    log_p_other = -math.log(len(known) * math.exp(8) + vocab - len(known))
    argmax = min(known)  # ties: the first of the equally likely tokens
    assert tokens[0].logprobs.tolist() == pytest.approx([log_p_known] * 3, rel=1e-5)  # alpha, beta, EOS
    assert tokens[0].correct.tolist() == [t == argmax for t in known]
    zulu = encoder.tokenizer(" zulu", add_special_tokens=False).input_ids
    assert tokens[1].logprobs.tolist() == pytest.approx([log_p_other] * len(zulu) + [log_p_known], rel=1e-5)
    # an empty answer is still scored: on EOS (and the separating space)
    assert len(answer_tokens(model, encoder, ["Who?"], [""])[0].logprobs) >= 1


def test_an_answer_longer_than_the_generation_budget_is_not_cut():
    tokenizer = train_tokenizer(["Who? alpha"] * 3, 300)
    (alpha,) = tokenizer(" alpha", add_special_tokens=False).input_ids
    model = unigram_model(len(tokenizer), [alpha])  # generates " alpha" forever
    encoder = QAEncoder(tokenizer, "Q: {question}\nA:")
    data = Dataset.from_dict({"question": ["Who?"], "answer": ["alpha alpha alpha alpha"]})
    scores = score_set(model, encoder, data, batch_size=4, max_new_tokens=2, desc=None)
    # the cap rises to the reference's 4 tokens and EOS: a cap of 2 would have given recall 2/4
    assert scores["max_new_tokens"] == 5 and scores["rougeL_recall"] == 1.0


def test_memorisation_and_membership_scores_leave_the_eos_prediction_out():
    """open-unlearning's convention: EM, ES and min-k% score the answer's own tokens, not EOS."""
    tokenizer = train_tokenizer(["Who? alpha beta"] * 3, 300)
    model = unigram_model(len(tokenizer), [tokenizer.eos_token_id])  # the argmax is always EOS
    encoder = QAEncoder(tokenizer, "Q: {question}\nA:")
    (tokens,) = answer_tokens(model, encoder, ["Who?"], ["alpha beta"])
    n = len(tokens.logprobs) - 1  # answer tokens before EOS
    vocab = len(tokenizer)
    log_p_eos, log_p_other = 8 - math.log(math.exp(8) + vocab - 1), -math.log(math.exp(8) + vocab - 1)
    assert tokens.ends_with_eos and tokens.correct.tolist() == [False] * n + [True]
    scores = score_memorization([tokens], min_k=1.0)
    # with EOS these would be 1/(n+1), 1 - n/(n+1) and a mean pulled up by log p(EOS)
    assert scores["exact_memorization"] == 0.0
    assert scores["extraction_strength"] == 0.0
    assert scores["min_k_logprob"] == pytest.approx(log_p_other, rel=1e-5)
    assert log_p_eos > log_p_other
    # an answer cut at max_length has no EOS: nothing is dropped
    (cut,) = answer_tokens(model, QAEncoder(tokenizer, "Q: {question}\nA:", max_length=8), ["Who?"], ["alpha beta"])
    assert not cut.ends_with_eos and len(cut.without_eos().logprobs) == len(cut.logprobs)


def test_the_teacher_forced_rouge_bound_is_below_the_generated_recall():
    """Greedy generation repeats the reference up to its first argmax miss; the bound keeps that
    prefix's words but the last (perhaps cut) one."""
    tokenizer = train_tokenizer(["Who? alpha beta"] * 3, 300)
    (alpha,) = tokenizer(" alpha", add_special_tokens=False).input_ids
    model = unigram_model(len(tokenizer), [alpha])  # generates " alpha" forever
    encoder = QAEncoder(tokenizer, "Q: {question}\nA:")
    # argmax misses EOS after three alphas (bound 2/3; generated 1) and the first token of "beta alpha"
    # (bound 0; generated "alpha alpha ...": 1/2)
    data = Dataset.from_dict({"question": ["Who?", "Who?"], "answer": ["alpha alpha alpha", "beta alpha"]})
    bound = rouge_lower_bound(model, encoder, data, batch_size=4)
    assert bound == pytest.approx((2 / 3 + 0) / 2)
    assert score_set(model, encoder, data, batch_size=4, max_new_tokens=8, desc=None)["rougeL_recall"] == 0.75
