"""TOFU's probability, truth ratio, model utility and forget quality on hand-made NLLs."""

import math

import pytest
import torch

from unlearn_bench.eval.tofu_metrics import AnswerProbability, TruthRatio, forget_quality, model_utility

LN2, LN4 = math.log(2), math.log(4)


def test_probability_is_exp_minus_mean_token_nll():
    metric = AnswerProbability()
    metric.update(torch.tensor([0.0, LN2]))
    metric.update(torch.tensor([LN4]))
    assert metric.per_sample().tolist() == pytest.approx([1.0, 0.5, 0.25])
    assert metric.compute().item() == pytest.approx((1 + 0.5 + 0.25) / 3)


def test_normalised_probability_divides_by_all_options():
    # true p = 1/2; perturbed p = 1/4 and 1/4 -> 0.5 / (0.5 + 0.5) = 0.5
    metric = AnswerProbability(normalise=True)
    metric.update(torch.tensor([LN2]), torch.tensor([[LN4, LN4]]))
    assert metric.compute().item() == pytest.approx(0.5)


def test_normalised_probability_of_a_one_option_set_is_one():
    metric = AnswerProbability(normalise=True)
    metric.update(torch.tensor([LN2]), torch.zeros(1, 0))  # no perturbed options
    assert metric.compute().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="perturbed"):
        AnswerProbability(normalise=True).update(torch.tensor([LN2]))


def test_truth_ratio_uses_the_geometric_mean_of_the_perturbed_probabilities():
    # paraphrased p = 1/2; perturbed p = 1/2 and 1/8 -> geometric mean 1/4 -> TR = (1/4) / (1/2) = 1/2
    para, pert = torch.tensor([LN2]), torch.tensor([[LN2, 3 * LN2]])
    forget, utility = TruthRatio("forget"), TruthRatio("utility")
    forget.update(para, pert)
    utility.update(para, pert)
    assert forget.per_sample().tolist() == pytest.approx([0.5])
    assert forget.compute().item() == pytest.approx(0.5)  # min(TR, 1/TR)
    assert utility.compute().item() == pytest.approx(0.5)  # max(0, 1 - TR)


def test_truth_ratio_aggregates_in_tofus_directions():
    # TR = 2 (prefers the false answers): forget min(2, 1/2) = 1/2; utility max(0, 1 - 2) = 0
    para, pert = torch.tensor([LN2, LN2]), torch.tensor([[0.0], [LN2]])  # TR = 2 and 1
    forget, utility = TruthRatio("forget"), TruthRatio("utility")
    forget.update(para, pert)
    utility.update(para, pert)
    assert forget.compute().item() == pytest.approx((0.5 + 1.0) / 2)
    assert utility.compute().item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="kind"):
        TruthRatio("retain")


def test_forget_quality_is_the_ks_p_value():
    same = torch.linspace(0.1, 1.0, 20)
    assert forget_quality(same, same) == pytest.approx(1.0)
    assert forget_quality(torch.full((20,), 0.01) + same / 100, same) < 1e-6  # all below vs spread


def test_model_utility_is_the_harmonic_mean():
    assert model_utility([0.5, 1.0]) == pytest.approx(2 / (2 + 1))
    assert model_utility([0.5, 0.0, 1.0]) == 0.0
    with pytest.raises(ValueError):
        model_utility([])


def test_score_likelihoods_reads_tofu_columns():
    from datasets import Dataset

    from conftest import unigram_model
    from unlearn_bench.data.qa import QAEncoder
    from unlearn_bench.eval.likelihood import mean_answer_nll, score_likelihoods
    from unlearn_bench.tokenizer import train_tokenizer

    data = Dataset.from_dict(
        {
            "question": ["Who?", "Where?"],
            "answer": ["alpha beta", "alpha"],
            "perturbed_answer": [["zulu quebec", "alpha zulu"], ["quebec", "beta"]],
        }
    )
    tokenizer = train_tokenizer(["Who? Where? alpha beta zulu quebec"] * 3, 300)
    encoder = QAEncoder(tokenizer, "Q: {question}\nA:")
    model = unigram_model(
        len(tokenizer), tokenizer(" alpha beta", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    )
    nll = lambda answers: torch.tensor(
        mean_answer_nll(model, encoder, Dataset.from_dict({"question": ["Who?", "Where?"], "answer": answers}))
    )
    true = nll(["alpha beta", "alpha"])
    pert = torch.stack([nll(["zulu quebec", "quebec"]), nll(["alpha zulu", "beta"])], dim=-1)

    # no paraphrase: the answer is the truth ratio's base, as TOFU does for world facts
    scores = score_likelihoods(model, encoder, data, normalise=True, truth_ratio_kind="utility")
    p = torch.exp(-true)
    assert scores["probability"] == pytest.approx((p / (p + torch.exp(-pert).sum(-1))).mean().item(), rel=1e-5)
    assert scores["truth_ratios"] == pytest.approx(torch.exp(true - pert.mean(-1)).tolist(), rel=1e-5)
    # with a paraphrase column, it is the base on forget/retain-style sets
    with_para = data.add_column("paraphrased_answer", ["zulu quebec", "quebec"])
    ratios = score_likelihoods(model, encoder, with_para, normalise=False, truth_ratio_kind="forget")["truth_ratios"]
    assert ratios == pytest.approx(torch.exp(pert[:, 0] - pert.mean(-1)).tolist(), rel=1e-5)
    # ... but never on TOFU's option sets (world facts, real authors): the answer stays the base
    option_set = score_likelihoods(model, encoder, with_para, normalise=True, truth_ratio_kind="utility")
    assert option_set["truth_ratios"] == pytest.approx(scores["truth_ratios"], rel=1e-6)
    # without perturbed answers: the plain probability, no truth ratio
    plain = score_likelihoods(model, encoder, data.remove_columns("perturbed_answer"), True, "utility")
    assert plain["probability"] == pytest.approx(p.mean().item(), rel=1e-5)
    assert "truth_ratio" not in plain
    # a one-option set (empty perturbed lists): normalised over the true answer alone
    one_option = Dataset.from_dict({"question": ["Who?"], "answer": ["alpha"], "perturbed_answer": [[]]})
    assert score_likelihoods(model, encoder, one_option, True, "utility")["probability"] == pytest.approx(1.0)
