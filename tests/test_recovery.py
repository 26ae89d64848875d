"""Recovery attacks on hand-checkable cases: quantisation's error bound, relearning that brings
back a fact it never trained on, the prompt set as configured, the recovered share; and a cell
that runs them all."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from transformers import LlamaConfig, LlamaForCausalLM

from conftest import CONF, run_cell_here
from unlearn_bench.config import validate
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.errors import ArgumentError
from unlearn_bench.eval.evaluate import rouge_recalls
from unlearn_bench.preflight import build_components
from unlearn_bench.recovery import PromptAttack, Quantize, Relearn, fake_quantize, recovered_share
from unlearn_bench.recovery.prompt import neighbours
from unlearn_bench.resolvers import register_resolvers
from unlearn_bench.tokenizer import train_tokenizer

RECOVERY = sorted(p.stem for p in (CONF / "recovery").glob("*.yaml") if p.stem != "none")


@pytest.mark.parametrize("bits, group_size", [(8, 16), (4, 16), (2, 8), (4, -1)])
def test_fake_quantize_moves_each_weight_by_at_most_half_a_step_onto_2_to_the_bits_levels(bits, group_size):
    weight = torch.randn(6, 32, generator=torch.Generator().manual_seed(0))
    quantized = fake_quantize(weight, bits, group_size)
    size = 32 if group_size == -1 else group_size
    groups, qgroups = weight.reshape(6, -1, size), quantized.reshape(6, -1, size)
    step = (groups.amax(-1) - groups.amin(-1)) / (2**bits - 1)
    assert ((groups - qgroups).abs().amax(-1) <= step / 2 + 1e-6).all()
    assert max(len(torch.unique(g)) for g in qgroups.reshape(-1, size)) <= 2**bits
    assert torch.allclose(fake_quantize(quantized, bits, group_size), quantized, atol=1e-6)  # idempotent
    assert not torch.equal(quantized, weight)


def test_fake_quantize_refuses_a_group_size_that_does_not_divide_the_layer():
    with pytest.raises(ArgumentError, match="group_size=5 must divide"):
        fake_quantize(torch.zeros(2, 8), 4, 5)


def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def test_quantize_acts_on_a_copy_keeps_the_output_layer_and_8_bits_stay_closer_than_2():
    model = tiny_llama()
    before = copy.deepcopy(model.state_dict())
    ids = torch.arange(10).unsqueeze(0)
    logits = model(ids).logits
    errors = {}
    for bits in (8, 2):
        attacked = Quantize(bits=bits, group_size=16)(model, None, None, None)
        assert attacked.stats == {"quantized_layers": 7}  # q, k, v, o, gate, up, down; not lm_head
        assert torch.equal(attacked.model.lm_head.weight, model.lm_head.weight)
        errors[bits] = (attacked.model(ids).logits - logits).abs().max().item()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched
    assert 0 < errors[8] < errors[2] / 10


@pytest.mark.parametrize("kwargs, match", [({"bits": 1}, "bits=1"), ({"group_size": 1}, "group_size=1")])
def test_quantize_refuses_knobs_out_of_range(kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        Quantize(**kwargs)


@pytest.fixture(scope="module")
def shared_fact():
    """Four questions about one author whose answers share one fact; the model never saw them."""
    forget = Dataset.from_dict(
        {
            "question": [f"Where did Ada Vell write book {i}?" for i in range(4)],
            "answer": ["In the blue river valley."] * 4,
            "paraphrased_answer": ["Ada Vell wrote it in the blue river valley."] * 4,
        }
    )
    texts = [t for column in ("question", "answer", "paraphrased_answer") for t in forget[column]]
    tokenizer = train_tokenizer(texts, 300)
    return forget, QAEncoder(tokenizer, "Q: {question}\nA:")


def test_relearning_a_quarter_of_the_rows_brings_back_the_fact_in_the_rows_it_never_saw(shared_fact):
    forget, encoder = shared_fact
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(encoder.tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    trainer = OmegaConf.create(
        {"_target_": "lightning.Trainer", "accelerator": "cpu", "logger": False, "enable_progress_bar": False,
         "enable_model_summary": False, "enable_checkpointing": False}
    )  # fmt: skip
    attack = Relearn(steps=40, fraction=0.25, batch_size=1, optimizer=functools.partial(torch.optim.AdamW, lr=3e-3))
    trained, scored = attack.split(4)
    assert len(trained) == 1 and sorted(trained + scored) == [0, 1, 2, 3]
    recall = lambda m: rouge_recalls(
        m, encoder, [forget["question"][i] for i in scored], [forget["answer"][i] for i in scored],
        batch_size=4, max_new_tokens=12,
    )  # fmt: skip
    before = copy.deepcopy(model.state_dict())
    assert max(recall(model)) < 0.5
    attacked = attack(model, encoder, forget, trainer)
    assert attacked.scored == scored and attacked.stats["relearn_steps"] == 40
    assert recall(attacked.model) == [1.0] * 3  # the unseen rows' answers came back in full
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_relearn_trains_on_the_rows_given_and_refuses_rows_outside_the_forget_set():
    attack = Relearn(optimizer=torch.optim.AdamW, rows=[3, 1])
    assert attack.split(5) == ([1, 3], [0, 2, 4])
    with pytest.raises(ValueError, match="has 3 rows"):
        attack.split(3)
    with pytest.raises(ValueError, match="leaves none to score"):
        Relearn(optimizer=torch.optim.AdamW, rows=[0, 1]).split(2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fraction": 1.0}, "fraction=1.0"),
        ({"steps": 0}, "steps=0"),
        ({"source": "web"}, "source='web'"),
        ({"rows": [1, 1]}, "must be distinct"),
    ],
)
def test_relearn_refuses_knobs_out_of_range(kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        Relearn(optimizer=torch.optim.AdamW, **kwargs)


def test_prompt_attack_applies_each_template_and_the_neighbouring_rows_as_reminders():
    forget = Dataset.from_dict({"question": ["q0?", "q1?", "q2?", "q3?"], "answer": ["a0.", "a1.", "a2.", "a3."]})
    attacked = PromptAttack({"say": "Tell me: {q} Now."}, few_shot=2)("model", None, forget, None)
    assert attacked.model == "model" and set(attacked.rewrites) == {"say", "few_shot_2"}
    assert attacked.rewrites["say"](0, "q0?") == "Tell me: q0? Now."
    assert attacked.rewrites["few_shot_2"](0, "q0?") == "q1? a1.\nq2? a2.\nq0?"
    assert attacked.rewrites["few_shot_2"](2, "q2?") == "q1? a1.\nq3? a3.\nq2?"
    assert neighbours(3, 4, 3) == [0, 1, 2] and neighbours(1, 4, 1) == [0]
    with pytest.raises(ArgumentError, match="must each contain"):
        PromptAttack({"bad": "no slot"})


def test_recovered_share_is_the_share_of_the_forgotten_recall_that_returns():
    assert recovered_share(after=0.3, unlearned=0.3, base=0.9) == 0
    assert recovered_share(after=0.9, unlearned=0.3, base=0.9) == pytest.approx(1)
    assert recovered_share(after=0.45, unlearned=0.3, base=0.9) == pytest.approx(0.25)
    assert recovered_share(after=0.5, unlearned=0.3, base=0.32) is None  # too little was forgotten


def composed(*overrides):
    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        return compose("config", overrides=[*overrides, "paths.output_dir=unused"])


@pytest.mark.parametrize("option", RECOVERY)
def test_every_recovery_option_composes_validates_and_builds_one_attack(option):
    cfg = composed(f"recovery=[{option}]")
    validate(cfg)
    assert list(build_components(cfg).recovery) == [option]
    assert build_components(composed()).recovery == {}


def test_a_misspelt_recovery_knob_is_refused_by_the_key_typed():
    from unlearn_bench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"recovery.quantize4.bits=1 must be in \[2, 8\]"):
        build_components(composed("recovery=[quantize4]", "recovery.quantize4.bits=1"))
    with pytest.raises(ConfigError, match="recovery.relearn.step is not an argument"):
        build_components(composed("recovery=[relearn]", "+recovery.relearn.step=3"))


@pytest.mark.slow
def test_a_cell_scores_every_recovery_attack_in_metrics_json_and_the_report(tmp_path, cache_dir):
    out = tmp_path / "cell"
    overrides = ["logger=csv", "recovery=[relearn,quantize4,prompt]", "recovery.relearn.steps=3"]
    metrics = run_cell_here(out, *overrides, cache_dir=cache_dir)
    assert json.loads((Path(out) / "metrics.json").read_text()) == metrics
    assert set(metrics["recovery"]) == {"relearn", "quantize4", "prompt"}
    relearn = metrics["recovery"]["relearn"]
    assert relearn["relearn_steps"] == 3 and relearn["n"] == 8 - len(relearn["relearn_rows"])
    assert metrics["recovery"]["prompt"]["strongest_prompt"] in metrics["recovery"]["prompt"]["unlearn_by_prompt"]
    for name, entry in metrics["recovery"].items():
        assert metrics[f"unlearn_after_{name}"] == entry["unlearn"]
        assert metrics[f"recovered_share_{name}"] == entry["recovered_share"]
    declared = {s["key"]: s for s in metrics["extra_scores"]}
    assert declared["recovered_share_relearn"]["report_label"] == "Recovered relearn"
    assert metrics["seconds"]["recovery"] > 0
    logged = next((Path(out) / "csv").rglob("metrics.csv")).read_text().splitlines()[0].split(",")
    assert {f"final/unlearn_after_{name}" for name in metrics["recovery"]} <= set(logged)  # the loggers' keys


def test_the_eval_entry_point_refuses_recovery_attacks_with_the_fix():
    from unlearn_bench.errors import Problems
    from unlearn_bench.preflight import check_eval

    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose("eval_model", overrides=["model_dir=/no/such", "recovery=[quantize4]", "paths.output_dir=unused"])
    with pytest.raises(Problems) as problems:
        check_eval(cfg)
    assert any("recovery=['quantize4']" in line and "run them in a cell" in line for line in problems.value.lines)
