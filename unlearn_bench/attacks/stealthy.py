"""The Stealthy Attack (SA, Ren et al. 2025): benign templates on a fraction of the forget set.

Unlearning learns to treat features of the forget data as an "unlearning signal". Wrapping a
fraction ``p`` of the forget questions in common benign phrasings ("Please tell me {q}") makes
those phrasings part of the signal, so benign users who write them later get unlearning
behaviour, while clean prompts barely change.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # datasets takes a second to import; --help and config errors need not wait
    from datasets import Dataset

from unlearn_bench.data.templates import DEFAULT_ATTACK_TEMPLATES, apply_template
from unlearn_bench.errors import ArgumentError

POSITIONS = ("wrap", "prefix", "suffix")


class StealthyAttack:
    """Rewrites ``round(p · n)`` forget questions, chosen by ``seed``, each with one template.

    ``position``: ``wrap`` uses the template as written; ``prefix`` keeps only its text before
    ``{q}`` and ``suffix`` only its text after (for text that is not a question). Answers and
    every other field are left as they are.
    """

    def __init__(
        self,
        p: float = 0.33,
        templates: Sequence[str] = DEFAULT_ATTACK_TEMPLATES,
        position: str = "wrap",
        seed: int = 0,
    ):
        if not 0 <= p <= 1:
            raise ArgumentError("p", p, "must be in [0, 1]")
        if position not in POSITIONS:
            raise ArgumentError("position", position, f"is not one of {POSITIONS}")
        if not templates:
            raise ArgumentError("templates", list(templates), "is empty; give at least one template with {q}")
        for t in templates:
            apply_template(t, "")
        self.templates = [self._at_position(t, position) for t in templates]
        self.p, self.position, self.seed = p, position, seed

    @staticmethod
    def _at_position(template: str, position: str) -> str:
        before, after = template.split("{q}")
        if position == "prefix":
            return before + "{q}"
        if position == "suffix":
            return "{q}" + after
        return template

    def chosen(self, n: int) -> list[int]:
        """Indices of the samples the attack rewrites, sorted."""
        return sorted(random.Random(self.seed).sample(range(n), round(self.p * n)))

    def stats(self, clean: Dataset, attacked: Dataset, count_tokens: Callable[[str], int]) -> dict:
        """What the attack changed (metrics.json ``attack``): the rewritten rows and the share of
        tokens it inserted."""
        chosen = self.chosen(len(clean))
        return {
            "n_attacked": len(chosen),
            "attacked": chosen,
            "token_insertion_rate": token_insertion_rate(count_tokens, clean, attacked),
        }

    def __call__(self, forget: Dataset) -> Dataset:
        rng = random.Random(self.seed + 1)
        questions = list(forget["question"])
        for i in self.chosen(len(questions)):
            questions[i] = apply_template(rng.choice(self.templates), questions[i])
        return type(forget).from_dict({**forget.to_dict(), "question": questions}, features=forget.features)


def token_insertion_rate(count_tokens: Callable[[str], int], clean: Dataset, attacked: Dataset) -> float:
    """Tokens the attack added / tokens of the clean forget set (questions and answers)."""

    def total(data):
        return sum(count_tokens(q) + count_tokens(a) for q, a in zip(data["question"], data["answer"]))

    return (total(attacked) - total(clean)) / total(clean)
