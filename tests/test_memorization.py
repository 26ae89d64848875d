"""Min-k% membership scores, exact memorisation, extraction strength and the MIA AUC on hand-made
token scores; teacher-forced token scores and truncated generation on a unigram model."""

import math

import pytest
import torch
from datasets import Dataset

from conftest import unigram_model
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.eval.evaluate import score_set
from unlearn_bench.eval.likelihood import answer_tokens
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
    metric.update([torch.tensor([-1.0, -2.0, -3.0, -4.0, -5.0]),  # 40% of 5 = 2 tokens: (-5 - 4) / 2
                   torch.tensor([-0.5, -7.0])])  # int(0.8) = 0 -> at least one token: -7
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
    assert privleak(0.9, 0.5) == pytest.approx(80.0)
    assert privleak(0.3, 0.0) is None  # relative to a zero AUC: undefined, not a crash
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
