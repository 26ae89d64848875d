"""Multiple-choice accuracy by the log-likelihood of each choice (WMDP's and lm-eval's ``acc``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from datasets import Dataset
from torch import Tensor

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.data.source import head
from unlearn_bench.eval.likelihood import answer_tokens
from unlearn_bench.eval.per_item import PerItemMetric


class MultipleChoiceAccuracy(PerItemMetric):
    """Per item 1 if the right choice has the highest log-likelihood Σ_t log p(c_t | q, c_<t)
    (ties: the first of them), else 0; the mean over items. A one-choice item is always right."""

    def update(self, choice_logliks: list[Tensor], answers: list[int]) -> None:
        """``choice_logliks``: per item, one summed log-likelihood per choice."""
        for logliks, answer in zip(choice_logliks, answers, strict=True):
            if not 0 <= answer < len(logliks):
                raise ValueError(f"answer index {answer} for {len(logliks)} choices")
            self.values.append(torch.tensor([float(int(logliks.argmax()) == answer)]))

    def compute(self) -> Tensor:
        return self.per_sample().mean()


def score_multiple_choice(
    model,
    encoder: QAEncoder,
    data: Dataset,
    batch_size: int = 64,
    max_samples: int | None = None,
    rewrite: Callable[[str], str] | None = None,
    desc: str = "multiple choice",
) -> dict:
    """Accuracy on ``data`` (``question``, ``choices``, ``answer``); each choice is scored as the
    continuation of the question's prompt (no EOS), ``rewrite`` transforms the question first."""
    data = head(data, max_samples)
    questions = [rewrite(q) if rewrite else q for q in data["question"]]
    pairs = [(q, c) for q, choices in zip(questions, data["choices"]) for c in choices]
    tokens = answer_tokens(model, encoder, [q for q, _ in pairs], [c for _, c in pairs], batch_size, desc, eos=False)
    logliks = torch.tensor([t.logprobs.sum().item() for t in tokens])
    sizes = [len(c) for c in data["choices"]]
    accuracy = MultipleChoiceAccuracy()
    accuracy.update(list(logliks.split(sizes)), list(data["answer"]))
    return {"accuracy": accuracy.compute().item(), "n": len(data)}
