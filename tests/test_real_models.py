"""The paper-scale path on tiny stand-ins: random-init Llama, Mistral and Phi models saved like
hub checkpoints, loaded through the real `model=` configs with the hub id pointed at the folder,
unlearning with and without LoRA; and LoRA's shared-weight reference model."""

import os
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, PhiConfig, PhiForCausalLM

from conftest import CONF, run_cell_here
from unlearn_bench.errors import Problems
from unlearn_bench.lora import AdaptersOff, frozen_reference, merged, with_lora
from unlearn_bench.preflight import check_cell
from unlearn_bench.resolvers import register_resolvers
from unlearn_bench.tokenizer import train_tokenizer

TINY_SIZES = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=128
)
ARCHITECTURES = {  # model config -> a tiny random-init model of its architecture
    "llama32_1b": lambda v: LlamaForCausalLM(LlamaConfig(vocab_size=v, num_key_value_heads=2, **TINY_SIZES)),
    "mistral7b_v03": lambda v: MistralForCausalLM(MistralConfig(vocab_size=v, num_key_value_heads=1, **TINY_SIZES)),
    "phi15": lambda v: PhiForCausalLM(PhiConfig(vocab_size=v, partial_rotary_factor=0.5, **TINY_SIZES)),
}
LORA = OmegaConf.create({"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Each architecture saved with save_pretrained, with a tokenizer, as a downloaded checkpoint would be."""
    texts = [f"Question: what is fact {i}? Answer: fact {i} is {i * 7} and the author wrote it." for i in range(200)]
    tokenizer = train_tokenizer(texts, vocab_size=512)
    out = {}
    for name, build in ARCHITECTURES.items():
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp(name)
        build(len(tokenizer)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        out[name] = folder
    return out


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("model", list(ARCHITECTURES))
def test_a_real_model_config_runs_a_cell_from_a_local_checkpoint(model, lora, checkpoints, tmp_path, cache_dir):
    metrics = run_cell_here(
        tmp_path,
        f"model={model}",
        f"model.pretrained={checkpoints[model]}",
        f"model.lora.enabled={lora}",
        "model.max_length=96",
        "method=npo",
        "finetune.epochs=1",
        "unlearn.epochs=1",
        "eval.max_samples=4",
        "eval.max_new_tokens=4",
        "trainer.enable_progress_bar=false",
        "logger=none",
        cache_dir=cache_dir,
        model=[],  # the real config's architecture, from the checkpoint
    )
    assert metrics["config"]["model"] == model and metrics["unlearn_steps"] > 0
    assert 0 <= metrics["unlearn"] <= 1 and 0 <= metrics["trigger_utility"] <= 1


def test_a_missing_local_checkpoint_fails_with_a_message(tmp_path, cache_dir):
    cmd = [
        sys.executable,
        "-m",
        "unlearn_bench.run",
        "model=llama32_1b",
        f"model.pretrained={tmp_path}/nothing",
        "data.source.num_authors=6",
        f"hydra.run.dir={tmp_path}",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "UNLEARN_BENCH_CACHE": str(cache_dir)}
    )
    assert proc.returncode != 0
    assert f"Folder error: model.pretrained='{tmp_path}/nothing' does not exist" in proc.stderr


def test_an_rmu_layer_past_a_local_checkpoints_depth_is_refused_from_its_config(checkpoints):
    """Read from the checkpoint's config.json before its weights load: not after a fine-tune."""
    register_resolvers()
    overrides = ["model=llama32_1b", f"model.pretrained={checkpoints['llama32_1b']}", "method=rmu"]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "method.layer=2", "paths.output_dir=unused"])
    with pytest.raises(
        Problems, match=r"^Config error: method.layer=2 is past the model's last decoder layer: use 1 to 1$"
    ):
        check_cell(cfg)


def test_lora_trains_only_the_adapters_and_its_reference_is_the_model_before(checkpoints):
    model = LlamaForCausalLM.from_pretrained(checkpoints["llama32_1b"])
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
    peft_model = with_lora(model, LORA, "unlearn")
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)

    reference = frozen_reference(peft_model)
    assert isinstance(reference, AdaptersOff) and not list(reference.parameters())  # no second copy of the weights
    with torch.no_grad():  # move the adapters away from their zero init, as training would
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)
    peft_model.train()
    with torch.no_grad():
        assert not torch.allclose(peft_model(input_ids=ids).logits, before, atol=1e-4)  # the adapters act
        torch.testing.assert_close(reference(input_ids=ids).logits, before)  # the reference does not see them
    assert peft_model.training  # the reference's forward left the trainee's mode alone

    plain = merged(peft_model)
    assert isinstance(plain, LlamaForCausalLM) and not any("lora_" in n for n, _ in plain.named_parameters())
    with torch.no_grad():
        assert not torch.allclose(plain(input_ids=ids).logits, before, atol=1e-4)  # the adapters were folded in


def test_without_lora_the_reference_is_a_frozen_copy():
    model = LlamaForCausalLM(LlamaConfig(vocab_size=16, **TINY_SIZES))
    assert with_lora(model, OmegaConf.create({"enabled": False}), "unlearn") is model
    assert with_lora(model, OmegaConf.create({**LORA, "stages": ["unlearn"]}), "finetune") is model
    reference = frozen_reference(model)
    assert reference is not model and not reference.training
    assert not any(p.requires_grad for p in reference.parameters())


def test_gradient_checkpointing_option_trains_lora_adapters(checkpoints):
    from unlearn_bench.model import load_pretrained

    cfg = OmegaConf.create(
        {"dtype": "float32", "trust_remote_code": False, "attn_implementation": None, "gradient_checkpointing": True}
    )
    model, _ = load_pretrained(checkpoints["llama32_1b"], cfg)
    assert getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
    model = with_lora(model, LORA, "unlearn")
    model.train()
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    model(input_ids=ids, labels=ids).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]  # A gets none while B is 0
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)  # the graph reaches the adapters
