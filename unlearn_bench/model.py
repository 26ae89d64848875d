"""Getting a causal LM and its tokenizer: from a hub id / local path, or built from a config.

``model.pretrained`` set: ``from_pretrained`` (the paper-scale path). Unset: the architecture in
``model.architecture`` (a transformers config) with random init, and a tokenizer trained on the
data, so the embedded default needs no download.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from transformers import AutoModelForCausalLM, AutoTokenizer

from unlearn_bench.cache import building, cache_key
from unlearn_bench.tokenizer import train_tokenizer


def load_pretrained(path: str | Path, model_cfg: DictConfig):
    """Model and tokenizer saved with ``save_pretrained``, or a hub id, loaded as ``model_cfg``
    says: dtype, attention implementation (transformers' default if null), remote code (only if
    allowed), gradient checkpointing. A folder the user gives was checked at start-up
    (:func:`~unlearn_bench.folders.model_path`)."""
    local = Path(path).expanduser()
    path = str(local) if local.is_dir() else str(path)
    remote = bool(model_cfg.get("trust_remote_code", False))
    kwargs = {"dtype": getattr(torch, model_cfg.dtype), "trust_remote_code": remote}
    if model_cfg.get("attn_implementation"):
        kwargs["attn_implementation"] = model_cfg.attn_implementation
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=remote)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if model_cfg.get("gradient_checkpointing"):  # transformers 5 renamed it; 4.x has the old name only
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
    return model, tokenizer


@contextmanager
def evaluating(model) -> Iterator[None]:
    """Eval mode and inference mode (no autograd bookkeeping at all: generation ~10% faster than
    under ``no_grad``, same numbers) for the block, then the model's previous mode back (scoring
    happens inside training too: stop checks, curves)."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def base_model(model_cfg: DictConfig, corpus: Iterable[str], cache_dir: Path):
    """The model fine-tuning starts from, and its tokenizer."""
    if model_cfg.pretrained:
        return load_pretrained(model_cfg.pretrained, model_cfg)
    tokenizer = _local_tokenizer(list(corpus), model_cfg.tokenizer_vocab_size, cache_dir)
    config = instantiate(
        model_cfg.architecture,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return AutoModelForCausalLM.from_config(config, dtype=getattr(torch, model_cfg.dtype)), tokenizer


def _local_tokenizer(texts: list[str], vocab_size: int, cache_dir: Path):
    folder = Path(cache_dir) / f"tokenizer-{cache_key({'texts': texts, 'vocab_size': vocab_size})}"
    if not folder.is_dir():
        with building(folder) as tmp:
            train_tokenizer(texts, vocab_size).save_pretrained(tmp)
    return AutoTokenizer.from_pretrained(str(folder))
