"""The forward pass of a QA batch with logits only where answer tokens are predicted: what every
loss term and teacher-forced score reads, without the prompt positions' share of the output layer."""

from __future__ import annotations

import inspect
from functools import cache

from unlearn_bench.data.qa import IGNORE_INDEX


def answer_forward(model, batch, output_hidden_states: bool = False):
    """The model's output on a QA batch (``input_ids``, ``attention_mask``, ``labels``), with logits
    only from the first position that predicts an answer token on, and that position.

    Prompt positions predict no answer token, so no loss or score reads their logits: skipping
    them saves their share of the output layer and of its ``[positions, vocab]`` tensor, the
    largest of a step at a real vocabulary. Models whose forward has no ``logits_to_keep``
    (transformers' name for it) return every position, at offset 0."""
    labels = batch["labels"][:, 1:]
    answered = (labels != IGNORE_INDEX).any(0).nonzero()
    offset = int(answered[0]) if len(answered) and _keeps_logits(_unwrapped_type(model)) else 0
    kwargs = {"logits_to_keep": labels.shape[1] + 1 - offset} if offset else {}
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        output_hidden_states=output_hidden_states,
        **kwargs,
    )
    return out, offset


def _unwrapped_type(model) -> type:
    get_base = getattr(model, "get_base_model", None)  # peft passes the keyword through to it
    return type(get_base() if get_base is not None else model)


@cache
def _keeps_logits(model_type: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_type.forward).parameters
