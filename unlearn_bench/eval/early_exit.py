"""Ending a generation pass once the answers generated so far prove the set's ROUGE-L recall
above a threshold: a stop check that will not stop needs to know only that."""

from __future__ import annotations

import torch
from transformers import StoppingCriteria

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.eval.rouge import RougeLRecall


class RecallAbove(Exception):
    """The generated answers' mean ROUGE-L recall is at least ``bound``, above the watch's
    threshold; the generation was ended there."""

    def __init__(self, bound: float):
        super().__init__(f"ROUGE-L recall >= {bound:.4f}")
        self.bound = bound


class RecallWatch(StoppingCriteria):
    """A lower bound, every ``every`` new tokens, on the mean ROUGE-L recall of the greedy answers
    whose references are ``references``, from what is generated so far; above ``threshold`` it
    ends the generation by raising :class:`RecallAbove`.

    Generation only appends, so an unfinished answer's words but the last (perhaps cut) one are
    the first words of its final answer, and their LCS with the reference is at most the final
    one's; a finished answer is final; rows not generated yet count 0 (the argument of
    :func:`~unlearn_bench.eval.evaluate.rouge_lower_bound`, on generated prefixes). The generation
    loop calls ``start`` before and ``end`` after each batch."""

    def __init__(self, encoder: QAEncoder, references: list[str], threshold: float, every: int = 8):
        self.encoder, self.references, self.threshold, self.every = encoder, references, threshold, every
        self.finished = 0.0  # recall summed over the answers of the batches generated
        self.rows: list[int] = []
        self.width = 0

    def start(self, rows: list[int], width: int) -> None:
        self.rows, self.width = rows, width

    def end(self, answers: list[str]) -> None:
        self.finished += self._recall_sum(answers)

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        if (input_ids.shape[1] - self.width) % self.every == 0:
            eos = self.encoder.tokenizer.eos_token_id
            prefixes = []
            for row in input_ids[:, self.width :]:
                text = self.encoder.decode_answer(row)
                prefixes.append(text if (row == eos).any() else " ".join(text.split()[:-1]))
            bound = (self.finished + self._recall_sum(prefixes)) / len(self.references)
            if bound > self.threshold:
                raise RecallAbove(bound)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def _recall_sum(self, answers: list[str]) -> float:
        metric = RougeLRecall()
        metric.update(answers, [self.references[i] for i in self.rows])
        return float(metric.per_sample().sum())
