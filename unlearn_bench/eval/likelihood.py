"""Per-sample answer likelihoods under a model, for scoring and filtering."""

from __future__ import annotations

import torch
from datasets import Dataset
from tqdm.auto import tqdm

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.losses.terms import sequence_nll


@torch.no_grad()
def answer_nll(model, encoder: QAEncoder, data: Dataset, batch_size: int = 64, desc: str = "nll") -> list[float]:
    """Mean answer-token NLL of each (question, answer) row of ``data``, in order."""
    was_training = model.training
    model.eval()
    rows = [encoder.encode(q, a) for q, a in zip(data["question"], data["answer"])]
    values: list[float] = []
    for start in tqdm(range(0, len(rows), batch_size), desc=desc, leave=False):
        batch = {k: v.to(model.device) for k, v in encoder.collate(rows[start : start + batch_size]).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        values += sequence_nll(logits, batch["labels"]).tolist()
    model.train(was_training)
    return values
