"""Scope samples for Scope-aware Unlearning (SU): a forget prompt joined to a retain prompt,
answered with the retain answer, so the model learns that unlearning signals in a prompt must
not destroy its answer to the normal part (Ren et al. 2025)."""

from __future__ import annotations

import random

from datasets import Dataset


def scope_pairs(forget: Dataset, retain: Dataset, seed: int) -> Dataset:
    """One sample per retain row: question = x_f ⊕ x_r (a random forget question, a space, the
    retain question), answer = y_r. Batches draw from this pool afresh each epoch."""
    rng = random.Random(seed)
    forget_q = forget["question"]
    questions = [f"{rng.choice(forget_q)} {q}" for q in retain["question"]]
    return Dataset.from_dict({"question": questions, "answer": list(retain["answer"])})
