"""Loss values against hand computations on a bigram 'model' whose logits we choose."""

import math
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from transformers import LlamaConfig, LlamaForCausalLM

from conftest import CONF
from unlearn_bench.losses import (
    DPO,
    KL,
    NLL,
    NPO,
    ComposedLoss,
    ForwardCache,
    NegativeNLL,
    RMUMisdirect,
    RMURetain,
    SimNPO,
    sequence_nll,
)
from unlearn_bench.losses.method import passes
from unlearn_bench.resolvers import register_resolvers

X = -100  # ignored label


class Bigram(torch.nn.Module):
    """logits at position t = W[input_ids[t]]; counts its forward passes. ``uniform``: all
    logits 0, every next token has p = 1/3."""

    def __init__(self, uniform: bool = False):
        super().__init__()
        w = torch.zeros(3, 3)
        if not uniform:
            w[0, 1] = math.log(3)  # p(1 | 0) = 3/5
            w[2, 0] = math.log(2)  # p(0 | 2) = 2/4; p(2 | 1) = 1/3 (row of zeros)
        self.w, self.calls, self.hidden_requests = torch.nn.Parameter(w), 0, []

    def forward(self, input_ids, attention_mask, output_hidden_states=False):
        self.calls += 1
        self.hidden_requests.append(output_hidden_states)
        embeddings = torch.nn.functional.one_hot(input_ids, 3).float()
        # one "decoder layer" whose output is the logits themselves; None unless asked, as in transformers
        hidden = (embeddings, self.w[input_ids]) if output_hidden_states else None
        return SimpleNamespace(logits=self.w[input_ids], hidden_states=hidden)


def batch(ids, labels):
    ids = torch.tensor(ids)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor(labels)}


# forget: sample A answers "1 2" after prompt "0": nll = (ln 5/3 + ln 3) / 2 = ln(5)/2
#         sample B answers "0" after prompt "2", then padding: nll = ln 2
FORGET = batch([[0, 1, 2], [2, 0, 0]], [[X, 1, 2], [X, 0, X]])
RETAIN = batch([[2, 0, 0]], [[X, 0, X]])  # nll = ln 2 (as wide as FORGET: one forward runs both)
NLL_A, NLL_B = math.log(5) / 2, math.log(2)


def test_sequence_nll_is_a_per_sample_mean_over_answer_tokens():
    nll = sequence_nll(Bigram().w[FORGET["input_ids"]], FORGET["labels"])
    assert nll.tolist() == pytest.approx([NLL_A, NLL_B])


def test_sequence_nll_of_an_empty_answer_is_zero_not_nan():
    nll = sequence_nll(torch.zeros(1, 3, 3), torch.tensor([[X, X, X]]))
    assert nll.tolist() == [0.0]


def test_ga_is_minus_the_forget_nll():
    loss = ComposedLoss({"forget": NegativeNLL("forget")})
    total, parts = loss(Bigram(), {"forget": FORGET})
    assert total.item() == pytest.approx(-(NLL_A + NLL_B) / 2)
    assert parts["forget"].item() == pytest.approx(-(NLL_A + NLL_B) / 2)


def test_gd_adds_the_weighted_retain_nll():
    loss = ComposedLoss({"forget": NegativeNLL("forget"), "retain": NLL("retain", weight=2.0)})
    total, parts = loss(Bigram(), {"forget": FORGET, "retain": RETAIN})
    assert total.item() == pytest.approx(-(NLL_A + NLL_B) / 2 + 2 * math.log(2))
    assert parts["retain"].item() == pytest.approx(math.log(2))  # logged unweighted


def test_gd_gradient_pushes_forget_likelihood_down_and_retain_up():
    model = Bigram()
    loss = ComposedLoss({"forget": NegativeNLL("forget"), "retain": NLL("retain")})
    loss(model, {"forget": FORGET, "retain": RETAIN})[0].backward()
    # d nll_i / d w[a, b] = (p(b | a) - 1) / |y_i| for an observed pair (a, b); forget has 2 samples
    assert model.w.grad[0, 1].item() == pytest.approx(-0.5 * 0.5 * (3 / 5 - 1))  # forget only: pushed down
    assert model.w.grad[1, 2].item() == pytest.approx(-0.5 * 0.5 * (1 / 3 - 1))
    # 2 -> 0 is in forget sample B (weight -1/2) and in retain (weight 1): retain wins, pushed up
    assert model.w.grad[2, 0].item() == pytest.approx(-0.5 * (0.5 - 1) + (0.5 - 1))


def test_terms_on_one_split_share_one_forward_pass():
    model = Bigram()
    loss = ComposedLoss({"a": NLL("forget"), "b": NegativeNLL("forget", weight=0.5)})
    total, _ = loss(model, {"forget": FORGET})
    assert model.calls == 1
    assert total.item() == pytest.approx(0.5 * (NLL_A + NLL_B) / 2)


@pytest.mark.parametrize(
    "terms, hidden, reference_passes",
    [
        ({"f": NegativeNLL("forget"), "r": NLL("retain")}, False, 0),
        ({"f": NPO("forget"), "r": KL("retain")}, False, 2),
        ({"f": RMUMisdirect("forget", layer=1, steering_coeff=1.0), "r": NLL("retain")}, True, 0),
    ],
    ids=["gd", "npo+kl", "rmu"],
)
def test_the_trained_model_runs_once_a_batch_and_the_reference_once_a_split_it_is_read_on(
    terms, hidden, reference_passes
):
    model, reference = Bigram(), Bigram()
    ComposedLoss(terms)(model, {"forget": FORGET, "retain": RETAIN}, reference)
    assert model.hidden_requests == [hidden]  # both splits in one pass; hidden states only if a term reads them
    assert reference.calls == reference_passes


@pytest.mark.parametrize("method", ["gd", "npo", "kl", "rmu", "dpo"])
def test_one_pass_over_all_splits_gives_each_split_the_loss_of_its_own_pass(method):
    """Splits of different widths and prompt lengths (so different first answer positions), joined
    in one pass of a real Llama: every term's value and gradient as with a pass per split."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    model, reference = LlamaForCausalLM(config), LlamaForCausalLM(config)

    def qa(prompts, answers, width):
        rows = [torch.randint(3, 32, (p + a,)).tolist() + [0] * (width - p - a) for p, a in zip(prompts, answers)]
        labels = [[X] * p + r[p : p + a] + [X] * (width - p - a) for r, p, a in zip(rows, prompts, answers)]
        mask = [[1] * (p + a) + [0] * (width - p - a) for p, a in zip(prompts, answers)]
        return {"input_ids": torch.tensor(rows), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}

    # widths close enough to be joined (passes), prompts of different lengths
    data = {
        "forget": qa([3, 5], [4, 2], 20),
        "retain": qa([2, 6, 4], [6, 5, 3], 21),
        "forget_idk": qa([3, 5], [2, 3], 20),
    }
    terms = {
        "gd": lambda: {"f": NegativeNLL("forget"), "r": NLL("retain")},
        "npo": lambda: {"f": NPO("forget"), "r": NLL("retain")},
        "kl": lambda: {"f": NegativeNLL("forget"), "r": KL("retain")},
        "rmu": lambda: {"f": RMUMisdirect("forget", layer=1, steering_coeff=2.0), "r": RMURetain("retain", layer=2)},
        "dpo": lambda: {"f": DPO("forget", preferred="forget_idk"), "r": NLL("retain")},
    }[method]()
    loss = ComposedLoss(terms)
    batch = {split: data[split] for split in sorted(loss.splits)}

    assert passes(batch) == [sorted(batch, key=lambda split: split != "retain")]  # one forward, widest first
    total, parts = loss.on(ForwardCache(model, batch, reference, loss.needs_hidden_states))
    total.backward()
    joint_grad = [None if p.grad is None else p.grad.clone() for p in model.parameters()]  # RMU: none past its layer
    model.zero_grad()
    alone = {}
    for name, term in loss.terms.items():
        # each term on a batch of only its own splits: with one split, a pass of that split alone
        own = {split: batch[split] for split in term.splits}
        alone[name] = term(ForwardCache(model, own, reference, term.needs_hidden_states))
    sum(loss.terms[n].weight * v for n, v in alone.items()).backward()
    assert {n: v.item() for n, v in parts.items()} == pytest.approx({n: v.item() for n, v in alone.items()}, rel=1e-5)
    for joint, own in zip(joint_grad, (p.grad for p in model.parameters()), strict=True):
        assert (joint is None) == (own is None)
        if joint is not None:
            torch.testing.assert_close(joint, own, rtol=1e-4, atol=1e-6)


def test_splits_share_a_forward_unless_joining_them_pads_too_much():
    shaped = lambda rows, width: {"input_ids": torch.zeros(rows, width, dtype=torch.long)}
    # 16 x 36 = 576 positions against 8 x 33 + 8 x 36 = 552 apart: 4% more, joined
    assert passes({"forget": shaped(8, 33), "retain": shaped(8, 36)}) == [["retain", "forget"]]
    # SU's scope rows hold two questions: 24 x 47 against 8 x (33 + 36 + 47), 22% more: apart
    su = {"forget": shaped(8, 33), "retain": shaped(8, 36), "scope": shaped(8, 47)}
    assert passes(su) == [["scope"], ["retain", "forget"]]
    assert passes({"train": shaped(16, 40)}) == [["train"]]


def test_a_term_on_a_missing_split_names_the_split():
    with pytest.raises(KeyError, match="retain"):
        ComposedLoss({"r": NLL("retain")})(Bigram(), {"forget": FORGET})


def test_npo_against_hand_computation():
    # summed answer NLL under the model: A = ln(5/3) + ln 3 = ln 5, B = ln 2;
    # under the uniform reference: A = 2 ln 3, B = ln 3.
    beta = 0.5
    log_ratio = [2 * math.log(3) - math.log(5), math.log(3) - math.log(2)]  # log pi/pi_ref
    expected = 2 / beta * sum(math.log(1 + math.exp(beta * r)) for r in log_ratio) / 2
    model, reference = Bigram(), Bigram(uniform=True)
    total, _ = ComposedLoss({"forget": NPO("forget", beta=beta)})(model, {"forget": FORGET}, reference)
    assert total.item() == pytest.approx(expected)
    total.backward()
    assert reference.w.grad is None  # the reference is only read
    assert model.w.grad[0, 1] > 0  # descent lowers the forget likelihood, as GA does


def test_npo_at_the_reference_is_2_ln2_over_beta_and_needs_a_reference():
    # at theta = ref the ratio is 1: L = (2/beta) ln 2
    total, _ = ComposedLoss({"f": NPO("forget", beta=0.1)})(Bigram(), {"forget": FORGET}, Bigram())
    assert total.item() == pytest.approx(2 / 0.1 * math.log(2))
    with pytest.raises(RuntimeError, match="reference model"):
        ComposedLoss({"f": NPO("forget")})(Bigram(), {"forget": FORGET})
    with pytest.raises(ValueError, match="beta"):
        NPO("forget", beta=0)


def test_simnpo_against_hand_computation():
    beta, gamma = 2.0, 0.5
    expected = 2 / beta * sum(math.log(1 + math.exp(gamma - beta * n)) for n in (NLL_A, NLL_B)) / 2
    total, _ = ComposedLoss({"f": SimNPO("forget", beta=beta, gamma=gamma)})(Bigram(), {"forget": FORGET})
    assert total.item() == pytest.approx(expected)
    total.backward()
    with pytest.raises(ValueError, match="beta"):
        SimNPO("forget", beta=-1)


def kl(q, p):
    return sum(qi * math.log(qi / pi) for qi, pi in zip(q, p))


def test_kl_against_hand_computation():
    # reference uniform; model: p(.|0) = (1/5, 3/5, 1/5), p(.|1) uniform, p(.|2) = (1/2, 1/4, 1/4).
    # A predicts answers at tokens 0 and 1, B at token 2.
    u = [1 / 3] * 3
    expected = (kl(u, [1 / 5, 3 / 5, 1 / 5]) / 2 + kl(u, [1 / 2, 1 / 4, 1 / 4])) / 2
    total, _ = ComposedLoss({"r": KL("forget")})(Bigram(), {"forget": FORGET}, Bigram(uniform=True))
    assert total.item() == pytest.approx(expected)
    at_reference, _ = ComposedLoss({"r": KL("forget")})(Bigram(), {"forget": FORGET}, Bigram())
    assert at_reference.item() == pytest.approx(0.0, abs=1e-7)


# IDK-style preferred answers to the same two prompts: "0 -> 2" (p = 1/5) and "2 -> 1" (p = 1/4)
PREFERRED = batch([[0, 2], [2, 1]], [[X, 2], [X, 1]])


def test_dpo_against_hand_computation():
    beta = 0.5
    preferred = [math.log(3) - math.log(5), math.log(3) - math.log(4)]  # log pi/pi_ref, uniform reference
    rejected = [2 * math.log(3) - math.log(5), math.log(3) - math.log(2)]
    expected = 2 / beta * sum(math.log(1 + math.exp(-beta * (w - r))) for w, r in zip(preferred, rejected)) / 2
    loss = ComposedLoss({"f": DPO("forget", preferred="idk", beta=beta)})
    total, _ = loss(Bigram(), {"forget": FORGET, "idk": PREFERRED}, Bigram(uniform=True))
    assert total.item() == pytest.approx(expected)
    assert loss.splits == {"forget", "idk"} and loss.paired == {"idk": "forget"} and loss.needs_reference
    at_reference, _ = loss(Bigram(), {"forget": FORGET, "idk": PREFERRED}, Bigram())
    assert at_reference.item() == pytest.approx(2 / beta * math.log(2))


def test_rmu_misdirect_pulls_the_layer_to_a_fixed_random_vector():
    term = RMUMisdirect("retain", layer=1, steering_coeff=4.0, seed=3)
    control = term.control_vector(3, "cpu")
    assert control.norm().item() == pytest.approx(4.0) and (control >= 0).all()
    assert torch.equal(control, RMUMisdirect("r", layer=1, steering_coeff=4.0, seed=3).control_vector(3, "cpu"))
    assert not torch.equal(control, RMUMisdirect("r", layer=1, steering_coeff=4.0, seed=4).control_vector(3, "cpu"))
    # RETAIN's one answer-predicting position has layer-1 activation w[2] = (ln 2, 0, 0)
    h = [math.log(2), 0.0, 0.0]
    expected = sum((hj - cj) ** 2 for hj, cj in zip(h, control.tolist())) / 3
    total, _ = ComposedLoss({"f": term})(Bigram(), {"retain": RETAIN})
    assert total.item() == pytest.approx(expected)


def test_rmu_retain_matches_the_reference_activations():
    total, _ = ComposedLoss({"r": RMURetain("retain", layer=1)})(Bigram(), {"retain": RETAIN}, Bigram(uniform=True))
    assert total.item() == pytest.approx(math.log(2) ** 2 / 3)  # reference activation is 0


def test_rmu_rejects_a_layer_the_model_lacks():
    with pytest.raises(ValueError, match="1 decoder layers"):
        ComposedLoss({"r": RMURetain("retain", layer=2)})(Bigram(), {"retain": RETAIN}, Bigram())
    with pytest.raises(ValueError, match="steering_coeff"):
        RMUMisdirect("forget", layer=1, steering_coeff=0)


@pytest.mark.parametrize(
    "name, splits, reference",
    [
        ("ga", {"forget"}, False),
        ("gd", {"forget", "retain"}, False),
        ("kl", {"forget", "retain"}, True),
        ("npo", {"forget", "retain"}, True),
        ("simnpo", {"forget", "retain"}, False),
        ("idk", {"idk", "retain"}, False),
        ("dpo", {"forget", "idk", "retain"}, True),
        ("rmu", {"forget", "retain"}, True),
    ],
)
def test_method_configs_build_their_terms(name, splits, reference):
    register_resolvers()
    cfg = OmegaConf.load(CONF / "method" / f"{name}.yaml")
    cfg = OmegaConf.merge({"method": cfg, "seed": 0}).method
    loss = instantiate(cfg.loss)
    assert loss.splits == splits and loss.needs_reference == reference


class AllLogits(torch.nn.Module):
    """The same Llama behind a forward without ``logits_to_keep``: every position's logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, output_hidden_states=False):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states)


def qa_batch(generator, prompt_lengths, answer_lengths, width=12):
    """Right-padded rows: a prompt (labels ignored), an answer (labelled), then padding."""
    ids = torch.randint(3, 50, (len(prompt_lengths), width), generator=generator)
    labels, mask = torch.full_like(ids, X), torch.zeros_like(ids)
    for row, (p, a) in enumerate(zip(prompt_lengths, answer_lengths)):
        labels[row, p : p + a], mask[row, : p + a] = ids[row, p : p + a], 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("name", ["ga", "gd", "kl", "npo", "simnpo", "idk", "dpo", "rmu"])
def test_losses_read_only_answer_predicting_logits_and_match_the_full_forward(name):
    """The step computes logits from the first answer-predicting position on (the prompt's are
    never read); every method's loss and gradient equal those from all positions' logits."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from unlearn_bench.answer_logits import answer_forward

    register_resolvers()
    cfg = OmegaConf.merge({"method": OmegaConf.load(CONF / "method" / f"{name}.yaml"), "seed": 0}).method
    loss = instantiate(cfg.loss)
    torch.manual_seed(0)
    config = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, vocab_size=64)
    model, reference = LlamaForCausalLM(LlamaConfig(**config)), LlamaForCausalLM(LlamaConfig(**config))
    g = torch.Generator().manual_seed(1)
    batch = {split: qa_batch(g, [5, 3, 7], [4, 6, 2]) for split in loss.splits}

    out, offset = answer_forward(model, batch[min(loss.splits)])
    assert offset == 2 and out.logits.shape[1] == 12 - 2  # from the shortest prompt's last token on

    def total_and_grads(trained, frozen):
        model.zero_grad()
        total, _ = loss(trained, batch, frozen)
        total.backward()
        return total.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    trimmed, trimmed_grads = total_and_grads(model, reference)
    full, full_grads = total_and_grads(AllLogits(model), AllLogits(reference))
    assert torch.allclose(trimmed, full, atol=1e-5)
    assert len(trimmed_grads) == len(full_grads) > 0
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(trimmed_grads, full_grads))
