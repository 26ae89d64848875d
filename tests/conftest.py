"""Shared fixtures: tiny-config overrides so end-to-end tests run in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from transformers import LlamaConfig, LlamaForCausalLM

import unlearn_bench  # noqa: F401  first: pins the CPU kernels as the entry points do (numerics.py)

_MINE = "UNLEARN_BENCH_TEST_THREADS"  # marks a count set here, not by the user
if os.environ.get("OMP_NUM_THREADS") in (None, os.environ.get(_MINE)):
    # pytest-xdist's workers share the cores as the joblib launcher's jobs do (workers x threads =
    # cores), and the cells tests start as processes inherit it: two workers of two threads each
    # fought over 2 cores, and every such cell spawned a second process to fine-tune side by side.
    # The controller imports this file too, before its workers start: they inherit its count (all
    # the cores) and must replace it, or OpenMP's oversubscribed threads make cells 3x slower.
    # Tests of thread-dependent behaviour set the count themselves (test_cache.py).
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ["OMP_NUM_THREADS"] = os.environ[_MINE] = str(_threads)
    torch.set_num_threads(_threads)

REAL_TOFU = Path(__file__).resolve().parents[2] / "shared" / "data" / "tofu"
ROOT = Path(__file__).resolve().parents[1]
CONF, SWEEPS = ROOT / "conf", ROOT / "multirun_sweeps"  # the configs' home (the package links to them)

# A ~50k-parameter model, one epoch per stage: the whole pipeline, none of the wait.
TINY = [
    "model.architecture.hidden_size=32",
    "model.architecture.intermediate_size=64",
    "model.architecture.num_hidden_layers=1",
    "model.architecture.num_attention_heads=2",
    "model.architecture.num_key_value_heads=2",
    "finetune.epochs=1",
    "unlearn.epochs=1",
    "eval.max_samples=8",
    "eval.max_new_tokens=8",
    "trainer.enable_progress_bar=false",
]
TINY_SYNTH = ["data.source.num_authors=6"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One model/data cache per test session, so fine-tuning happens once per worker."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["UNLEARN_BENCH_CACHE"] = str(path)
    return path


def unigram_model(vocab_size: int, known: list[int]) -> LlamaForCausalLM:
    """A real (generating) causal LM that predicts the same next-token distribution everywhere:
    logit 8 for the tokens of ``known``, 0 for the rest (its output layer is a bias alone)."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=8,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=256,
    )
    model = LlamaForCausalLM(config)
    model.lm_head = torch.nn.Linear(8, vocab_size, bias=True)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.zero_()
        model.lm_head.bias[known] = 8.0
    return model


def run_cli(out, *overrides, cache_dir, data=TINY_SYNTH):
    """``unlearn-bench`` as a process on the tiny overrides, its run directory ``out``."""
    cmd = [sys.executable, "-m", "unlearn_bench.run", *TINY, *data, f"hydra.run.dir={out}", *overrides]
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(cache_dir), "WANDB_MODE": "offline"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def run_cell_here(out, *overrides, cache_dir, data=TINY_SYNTH, model=TINY) -> dict:
    """What :func:`run_cli` runs, in this process (``unlearn_bench.run.run`` on the composed
    config): a tenth of the time, as a process spends ~10 s importing Lightning and transformers.
    Returns metrics.json's content; a bad input raises SystemExit(1) after its line on stderr.
    ``model``: the tiny overrides of the embedded model. For what only a process shows (exit
    status, console, Hydra's run folder), use run_cli."""
    from unlearn_bench.run import run

    paths = [f"paths.output_dir={out}", f"paths.cache_dir={cache_dir}"]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*model, *data, *paths, *overrides])
    return run(cfg)
