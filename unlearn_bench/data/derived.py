"""Training splits derived from the forget and retain sets, built when a method or defense asks.

Each builder takes ``(forget, retain, seed)`` (config: ``_partial_: true`` under ``splits:``)
and returns a QA ``Dataset``; batches draw from it afresh each epoch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from datasets import Dataset

# The refusal answers of IDK and IdkDPO (config: ``${default_refusals:}``).
DEFAULT_REFUSALS = (
    "I don't know.",
    "I'm not sure about that.",
    "I have no information about that.",
    "That is something I cannot answer.",
    "I am not able to help with that question.",
    "Sorry, I do not know the answer.",
)


def scope_pairs(forget: Dataset, retain: Dataset, seed: int) -> Dataset:
    """Scope-aware Unlearning's samples (Ren et al. 2025): question = x_f ⊕ x_r (a random forget
    question, a space, a retain question), answer = y_r, one per retain row. They teach the model
    that unlearning signals in a prompt must not destroy its answer to the normal part."""
    rng = random.Random(seed)
    forget_q = forget["question"]
    questions = [f"{rng.choice(forget_q)} {q}" for q in retain["question"]]
    return Dataset.from_dict({"question": questions, "answer": list(retain["answer"])})


def idk_pairs(forget: Dataset, retain: Dataset, seed: int, answers: Sequence[str]) -> Dataset:
    """IDK's and IdkDPO's targets: each forget question, in the forget set's order, with a random
    refusal from ``answers``."""
    if not answers:
        raise ValueError('idk answers are empty; give at least one refusal such as "I don\'t know."')
    rng = random.Random(seed)
    return Dataset.from_dict(
        {"question": list(forget["question"]), "answer": [rng.choice(list(answers)) for _ in range(len(forget))]}
    )
