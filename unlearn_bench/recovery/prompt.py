"""Prompt attacks as a recovery probe: the forget questions inside adversarial or role-play
framings, and with other forget facts as in-context reminders. The weights are not touched."""

from __future__ import annotations

from unlearn_bench.errors import ArgumentError
from unlearn_bench.recovery.base import Attacked


class PromptAttack:
    """Score the forget questions rewritten by each of ``templates`` (name -> text with ``{q}``),
    and, with ``few_shot`` > 0, preceded by that many neighbouring forget rows as question-answer
    pairs (TOFU lists each author's questions together, so the neighbours are mostly other facts of
    the same author). The attack's Unlearn is its strongest prompt's."""

    def __init__(self, templates: dict[str, str] | None = None, few_shot: int = 0):
        templates = dict(templates or {})
        bad = [name for name, text in templates.items() if "{q}" not in text]
        if bad:
            raise ArgumentError("templates", bad, "must each contain {q}, where the question goes")
        if few_shot < 0:
            raise ArgumentError("few_shot", few_shot, "must be >= 0")
        if not templates and not few_shot:
            raise ArgumentError("templates", templates, "must name at least one prompt, or set few_shot > 0")
        self.templates, self.few_shot = templates, few_shot

    def __call__(self, model, encoder, forget, trainer_cfg) -> Attacked:
        rewrites = {name: (lambda i, q, text=text: text.replace("{q}", q)) for name, text in self.templates.items()}
        if self.few_shot:
            questions, answers = list(forget["question"]), list(forget["answer"])
            rewrites[f"few_shot_{self.few_shot}"] = lambda i, q: "\n".join(
                [*(f"{questions[j]} {answers[j]}" for j in neighbours(i, len(questions), self.few_shot)), q]
            )
        return Attacked(model, rewrites=rewrites)


def neighbours(i: int, n: int, k: int) -> list[int]:
    """The ``k`` rows nearest to row ``i`` of ``n`` (the preceding one first on a tie), not ``i``."""
    return sorted(sorted((j for j in range(n) if j != i), key=lambda j: (abs(j - i), j))[:k])
