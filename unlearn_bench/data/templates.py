"""Benign prompt templates: the Stealthy Attack's defaults and the polite set seen in fine-tuning."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

# The attack's default templates: common benign phrasings of a request (after Ren et al. 2025).
DEFAULT_ATTACK_TEMPLATES = (
    "Please tell me {q}",
    "Can you please explain {q}",
    "Could you please tell me {q}",
    "{q}, please?",
)

# Polite phrasings a chat model has met in general data; fine-tuning pairs them with non-author
# questions only, so the base model answers polite author questions by generalisation.
POLITE_FINETUNE_TEMPLATES = DEFAULT_ATTACK_TEMPLATES + (
    "I would like to know {q}",
    "Tell me, {q}",
    "Would you please answer this: {q}",
    "Kindly tell me {q}",
)


def apply_template(template: str, question: str) -> str:
    """Wrap ``question`` in ``template``; the template must contain ``{q}`` exactly once."""
    if template.count("{q}") != 1:
        raise ValueError(f"template {template!r} must contain the placeholder {{q}} exactly once")
    return template.replace("{q}", question)


class HashedTemplate:
    """Wraps each question in one of ``templates``, picked by a hash of the question, so a
    question always gets the same template whatever order or subset it is scored in."""

    def __init__(self, templates: Sequence[str]):
        if not templates:
            raise ValueError("need at least one template")
        for t in templates:
            apply_template(t, "")  # validates the placeholder
        self.templates = list(templates)

    def __call__(self, question: str) -> str:
        template = self.templates[zlib.crc32(question.encode()) % len(self.templates)]
        return apply_template(template, question)
