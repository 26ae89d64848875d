"""Prompt/answer tokenisation with the loss on answer tokens only.

Prompt and answer are tokenised separately and concatenated, so the answer never merges into
the prompt's last token and generation sees exactly the training prompt ids (two known bugs of
other tools). EOS closes the answer in training but is not part of the generated text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # for the annotation only: the start-up checks import this module before transformers
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # the label of prompt and padding positions: no loss there


class QAEncoder:
    """Turns (question, answer) pairs into model inputs in one fixed prompt format."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_format: str, max_length: int = 128):
        if "{question}" not in prompt_format:
            raise ValueError(f"prompt_format {prompt_format!r} must contain {{question}}")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer, self.prompt_format, self.max_length = tokenizer, prompt_format, max_length

    def prompt_ids(self, question: str) -> list[int]:
        ids = self.tokenizer(self.prompt_format.format(question=question), add_special_tokens=False).input_ids
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        return (bos + ids)[: self.max_length - 1]

    def encode(self, question: str, answer: str, eos: bool = True) -> dict[str, list[int]]:
        """Prompt and answer ids, labels on the answer only; ``eos=False`` leaves EOS out (scoring
        a multiple-choice option as a continuation, not a whole answer)."""
        prompt = self.prompt_ids(question)
        answer_ids = self.answer_ids(answer, eos)[: self.max_length - len(prompt)]
        return {"input_ids": prompt + answer_ids, "labels": [IGNORE_INDEX] * len(prompt) + answer_ids}

    def answer_ids(self, answer: str, eos: bool = True) -> list[int]:
        """The answer's tokens as they follow the prompt (after a space), EOS last unless ``eos=False``."""
        return self.tokenizer(" " + answer, add_special_tokens=False).input_ids + [self.tokenizer.eos_token_id] * eos

    def decode_answer(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def collate(self, features: list[dict[str, list[int]]], side: str = "right") -> dict[str, torch.Tensor]:
        """Pad to the longest sequence; ``side="left"`` for generation, so prompts end together."""
        width = max(len(f["input_ids"]) for f in features)
        batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for f in features:
            n, pad = len(f["input_ids"]), width - len(f["input_ids"])
            labels = f.get("labels", [IGNORE_INDEX] * n)
            rows = (f["input_ids"], [1] * n, labels)
            fills = (self.tokenizer.pad_token_id, 0, IGNORE_INDEX)
            for key, row, fill in zip(batch, rows, fills):
                batch[key].append(row + [fill] * pad if side == "right" else [fill] * pad + row)
        return {k: torch.tensor(v) for k, v in batch.items()}
