"""Greedy, batched answer generation with left padding and the KV cache."""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.eval.distributed import sharded
from unlearn_bench.model import evaluating

log = logging.getLogger(__name__)


class Answer(NamedTuple):
    """A greedy answer, and whether it stopped at ``max_new_tokens`` without an end-of-sequence token."""

    text: str
    at_cap: bool


def generate_answers(
    model,
    encoder: QAEncoder,
    questions: list[str],
    batch_size: int = 64,
    max_new_tokens: int = 48,
    desc: str | None = "generate",
) -> list[Answer]:
    """The model's greedy answer to each question, in the order given, ``batch_size`` at a time
    (halved, with a warning, whenever a batch runs out of GPU memory); ``desc=None`` hides the
    progress bar (for frequent checks inside training). Under DDP each rank answers a share."""
    return sharded(lambda part: _generate(model, encoder, part, batch_size, max_new_tokens, desc), questions)


def _generate(
    model, encoder: QAEncoder, questions: list[str], batch_size: int, max_new_tokens: int, desc: str | None
) -> list[Answer]:
    # Sorting by prompt length keeps padding (wasted compute) small; answers are put back in order.
    prompts = [encoder.prompt_ids(q) for q in questions]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: list[Answer] = [Answer("", False)] * len(prompts)
    tokenizer = encoder.tokenizer
    start = 0
    with evaluating(model), tqdm(total=len(order), desc=desc, leave=False, disable=desc is None) as bar:
        while start < len(order):
            idx = order[start : start + batch_size]
            batch = encoder.collate([{"input_ids": prompts[i]} for i in idx], side="left")
            batch = {k: v.to(model.device) for k, v in batch.items()}
            try:
                out = model.generate(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    use_cache=True,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            except torch.cuda.OutOfMemoryError:
                if len(idx) == 1:
                    raise
                out = None
            if out is None:  # outside the except block, so that its traceback no longer holds the memory
                batch_size = len(idx) // 2  # this batch again, and the rest, at half the size
                log.warning(
                    "Out of GPU memory generating %d answers at once; going on with %d (set "
                    "eval.generation_batch_size=%d to start there)",
                    len(idx),
                    batch_size,
                    batch_size,
                )
                torch.cuda.empty_cache()
                continue
            width = batch["input_ids"].shape[1]
            for i, row in zip(idx, out[:, width:]):
                at_cap = len(row) == max_new_tokens and not (row == tokenizer.eos_token_id).any().item()
                answers[i] = Answer(encoder.decode_answer(row), at_cap)
            start += len(idx)
            bar.update(len(idx))
    return answers
