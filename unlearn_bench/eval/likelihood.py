"""Per-sample answer likelihoods under a model, for TOFU's metrics and for filtering."""

from __future__ import annotations

import torch
from datasets import Dataset
from tqdm.auto import tqdm

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.eval.tofu_metrics import AnswerProbability, TruthRatio
from unlearn_bench.losses.terms import sequence_nll


@torch.no_grad()
def mean_answer_nll(
    model, encoder: QAEncoder, data: Dataset, batch_size: int = 64, desc: str = "nll"
) -> list[float]:
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


def score_likelihoods(model, encoder: QAEncoder, data: Dataset, normalise: bool, truth_ratio_kind: str,
                      batch_size: int = 64, max_samples: int | None = None, desc: str = "likelihood") -> dict:
    """TOFU's probability and truth ratio on ``data`` (``question``, ``answer``, and optionally
    ``paraphrased_answer`` and the list ``perturbed_answer``; without a paraphrase the answer is
    the base of the truth ratio, as TOFU does for real authors and world facts). Returns
    ``{"probability", "truth_ratio", "truth_ratios"}`` (the last per item); only the plain
    probability when the set has no perturbed answers."""
    if max_samples is not None:
        data = data.select(range(min(max_samples, len(data))))
    questions = list(data["question"])

    def nll(answers: list[str], tag: str) -> torch.Tensor:
        pairs = Dataset.from_dict({"question": questions, "answer": answers})
        return torch.tensor(mean_answer_nll(model, encoder, pairs, batch_size, f"{desc} {tag}"))

    true_nll = nll(list(data["answer"]), "answer")
    if "perturbed_answer" not in data.column_names:  # nothing to normalise over or compare with
        probability = AnswerProbability()
        probability.update(true_nll)
        return {"probability": probability.compute().item()}
    options = [list(p) for p in data["perturbed_answer"]]
    width = min(len(o) for o in options)  # TOFU sets have a fixed number of options per item
    perturbed = torch.stack([nll([o[k] for o in options], f"perturbed {k + 1}") for k in range(width)], dim=-1)
    has_paraphrase = "paraphrased_answer" in data.column_names
    base = nll(list(data["paraphrased_answer"]), "paraphrase") if has_paraphrase else true_nll
    probability = AnswerProbability(normalise)
    probability.update(true_nll, perturbed)
    truth_ratio = TruthRatio(truth_ratio_kind)
    truth_ratio.update(base, perturbed)
    return {"probability": probability.compute().item(), "truth_ratio": truth_ratio.compute().item(),
            "truth_ratios": truth_ratio.per_sample().tolist()}
