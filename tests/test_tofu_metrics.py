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
