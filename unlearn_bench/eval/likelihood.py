"""Per-sample answer likelihoods under a model, for TOFU's metrics, memorisation and filtering."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from datasets import Dataset
from tqdm.auto import tqdm

from unlearn_bench.answer_logits import answer_forward
from unlearn_bench.data.qa import IGNORE_INDEX, QAEncoder
from unlearn_bench.data.source import head
from unlearn_bench.eval.distributed import sharded
from unlearn_bench.eval.memorization import (
    ExactMemorization,
    ExtractionStrength,
    MinKProbability,
)
from unlearn_bench.eval.tofu_metrics import AnswerProbability, TruthRatio
from unlearn_bench.model import evaluating


class AnswerTokens(NamedTuple):
    """One answer under teacher forcing: each token's log-probability, whether the argmax
    predicted it, and whether the last token is the closing EOS."""

    logprobs: torch.Tensor
    correct: torch.Tensor
    ends_with_eos: bool = False

    def without_eos(self) -> AnswerTokens:
        """The answer's own tokens: open-unlearning's memorisation and MIA scores drop the EOS
        prediction (an answer cut at ``max_length`` has none to drop; an empty answer, EOS alone,
        keeps it rather than have no score)."""
        if not self.ends_with_eos or len(self.logprobs) < 2:
            return self
        return AnswerTokens(self.logprobs[:-1], self.correct[:-1])


def answer_tokens(
    model,
    encoder: QAEncoder,
    questions: list[str],
    answers: list[str],
    batch_size: int = 64,
    desc: str | None = "nll",
    eos: bool = True,
) -> list[AnswerTokens]:
    """Teacher-forced scores of each answer's tokens (EOS included unless ``eos=False``) given its
    question, in order (``desc=None``: no progress bar). Under DDP each rank scores a share."""
    rows = [encoder.encode(q, a, eos) for q, a in zip(questions, answers, strict=True)]
    tokens = sharded(lambda part: _answer_tokens(model, encoder, part, batch_size, desc), rows)
    eos_id = encoder.tokenizer.eos_token_id
    return [t._replace(ends_with_eos=eos and row["labels"][-1] == eos_id) for t, row in zip(tokens, rows, strict=True)]


def _answer_tokens(model, encoder: QAEncoder, rows: list[dict], batch_size: int, desc: str | None):
    out: list[AnswerTokens] = []
    with evaluating(model):
        for start in tqdm(range(0, len(rows), batch_size), desc=desc, leave=False, disable=desc is None):
            batch = {k: v.to(model.device) for k, v in encoder.collate(rows[start : start + batch_size]).items()}
            output, offset = answer_forward(model, batch)  # logits from the first answer-predicting position
            logits, labels = output.logits[:, :-1], batch["labels"][:, offset + 1 :]
            mask = labels != IGNORE_INDEX
            # cross_entropy, not a full log_softmax copy: vocabularies of real models are large
            token_logprobs = -F.cross_entropy(
                logits.float().transpose(1, 2), labels, reduction="none", ignore_index=IGNORE_INDEX
            )
            correct = logits.argmax(-1) == labels
            out += [AnswerTokens(lp[m].cpu(), c[m].cpu()) for lp, c, m in zip(token_logprobs, correct, mask)]
    return out


def mean_answer_nll(model, encoder: QAEncoder, data: Dataset, batch_size: int = 64, desc: str = "nll") -> list[float]:
    """Mean answer-token NLL of each (question, answer) row of ``data``, in order."""
    tokens = answer_tokens(model, encoder, list(data["question"]), list(data["answer"]), batch_size, desc)
    return [-t.logprobs.mean().item() for t in tokens]


def score_memorization(tokens: list[AnswerTokens], min_k: float) -> dict:
    """Exact memorisation, extraction strength and mean min-k% log-probability of a set's answers,
    on the answer tokens without EOS (open-unlearning's convention); ``min_k_logprobs`` keeps the
    per-item membership scores for the MIA AUC."""
    tokens = [t.without_eos() for t in tokens]
    min_k_prob, em, es = MinKProbability(min_k), ExactMemorization(), ExtractionStrength()
    min_k_prob.update([t.logprobs for t in tokens])
    em.update([t.correct for t in tokens])
    es.update([t.correct for t in tokens])
    return {
        "exact_memorization": em.compute().item(),
        "extraction_strength": es.compute().item(),
        "min_k_logprob": min_k_prob.compute().item(),
        "min_k_logprobs": min_k_prob.per_sample().tolist(),
    }


def score_likelihoods(
    model,
    encoder: QAEncoder,
    data: Dataset,
    normalise: bool,
    truth_ratio_kind: str,
    batch_size: int = 64,
    max_samples: int | None = None,
    desc: str = "likelihood",
    min_k: float = 0.4,
) -> dict:
    """TOFU's probability and truth ratio on ``data`` (``question``, ``answer``, and optionally
    ``paraphrased_answer`` and the list ``perturbed_answer``), with the
    memorisation scores of :func:`score_memorization` from the same forward pass. Returns
    ``probability``, ``truth_ratio`` and ``truth_ratios`` (per item) and the memorisation keys;
    no truth ratio when the set has no perturbed answers.

    ``normalise`` marks TOFU's option sets (real authors, world facts): the probability is
    normalised over the true and perturbed answers, and the truth ratio's base is the answer itself
    even if a paraphrase exists, as TOFU and open-unlearning score them; elsewhere the base is the
    paraphrase when the set has one."""
    data = head(data, max_samples)
    questions = list(data["question"])

    def nll(answers: list[str], tag: str) -> torch.Tensor:
        tokens = answer_tokens(model, encoder, questions, answers, batch_size, f"{desc} {tag}")
        return torch.stack([-t.logprobs.mean() for t in tokens])

    tokens = answer_tokens(model, encoder, questions, list(data["answer"]), batch_size, f"{desc} answer")
    scores = score_memorization(tokens, min_k)
    true_nll = torch.stack([-t.logprobs.mean() for t in tokens])
    options = [list(p) for p in data["perturbed_answer"]] if "perturbed_answer" in data.column_names else []
    width = min(len(o) for o in options) if options else 0  # TOFU sets have a fixed number per item
    if width == 0:  # no column: the plain probability; empty option lists: normalised over one option
        probability = AnswerProbability(normalise and bool(options))
        probability.update(true_nll, torch.zeros(len(true_nll), 0))
        return {"probability": probability.compute().item(), **scores}
    perturbed = torch.stack([nll([o[k] for o in options], f"perturbed {k + 1}") for k in range(width)], dim=-1)
    para_base = "paraphrased_answer" in data.column_names and not normalise
    base = nll(list(data["paraphrased_answer"]), "paraphrase") if para_base else true_nll
    probability = AnswerProbability(normalise)
    probability.update(true_nll, perturbed)
    truth_ratio = TruthRatio(truth_ratio_kind)
    truth_ratio.update(base, perturbed)
    return {
        "probability": probability.compute().item(),
        "truth_ratio": truth_ratio.compute().item(),
        "truth_ratios": truth_ratio.per_sample().tolist(),
        **scores,
    }
