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
        self.ended: dict[int, float] = {}  # this batch's rows that have ended: their final recall
        self.rows: list[int] = []
        self.width = 0

    def start(self, rows: list[int], width: int) -> None:
        self.rows, self.width, self.ended = rows, width, {}

    def end(self, answers: list[str]) -> None:
        self.finished += sum(self._recalls(self.rows, answers))

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        if (input_ids.shape[1] - self.width) % self.every == 0:
            eos = self.encoder.tokenizer.eos_token_id
            rows, prefixes, ended = [], [], []
            for i, generated in zip(self.rows, input_ids[:, self.width :]):
                if i in self.ended:
                    continue
                text = self.encoder.decode_answer(generated)
                rows.append(i)
                ended.append(bool((generated == eos).any()))
                prefixes.append(text if ended[-1] else " ".join(text.split()[:-1]))
            recalls = self._recalls(rows, prefixes)
            self.ended |= {i: r for i, r, done in zip(rows, recalls, ended) if done}
            bound = self.finished + sum(self.ended.values()) + sum(r for r, d in zip(recalls, ended) if not d)
            if bound / len(self.references) > self.threshold:
                raise RecallAbove(bound / len(self.references))
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def _recalls(self, rows: list[int], answers: list[str]) -> list[float]:
        metric = RougeLRecall()
        metric.update(answers, [self.references[i] for i in rows])
        return metric.per_sample().tolist()
