"""Shared fixtures: tiny-config overrides so end-to-end tests run in seconds."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

REAL_TOFU = Path(__file__).resolve().parents[2] / "shared" / "data" / "tofu"

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


class Unigram(torch.nn.Module):
    """Predicts the same next-token distribution everywhere: the tokens of ``known`` are likely."""

    def __init__(self, vocab_size: int, known: list[int]):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(vocab_size))
        with torch.no_grad():
            self.bias[known] = 8.0
        self.device = torch.device("cpu")

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.bias.expand(*input_ids.shape, -1))
