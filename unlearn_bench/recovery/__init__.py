"""Recovery attacks: is the forgotten knowledge gone, or does it come back under light pressure?

A recovery attack is any object a ``recovery.<name>`` config builds by ``_target_`` that follows
:class:`RecoveryAttack`. After the cell's eval, each one acts on a copy of the unlearned model and
:func:`recovery_scores` scores the forget set again: Unlearn after the attack, and the recovered
share (Unlearn_after − Unlearn) / (Unlearn_base − Unlearn) of what unlearning had removed, all
three on the same forget rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from unlearn_bench.eval.scores import Score, as_json
from unlearn_bench.recovery.base import Attacked
from unlearn_bench.recovery.prompt import PromptAttack
from unlearn_bench.recovery.quantize import Quantize, fake_quantize
from unlearn_bench.recovery.relearn import Relearn

if TYPE_CHECKING:
    from datasets import Dataset

MIN_FORGOTTEN = 0.05  # below this drop from the base model, a recovered share is noise: null


class RecoveryAttack(Protocol):
    def __call__(self, model, encoder, forget: Dataset, trainer_cfg) -> Attacked:
        """The attacked copy of ``model`` and how to score it; ``model`` itself is left unchanged."""


def recovered_share(after: float, unlearned: float, base: float) -> float | None:
    """(after − unlearned) / (base − unlearned): 0 when the attack restores nothing, 1 when it
    restores the base model's score; None when unlearning removed less than ``MIN_FORGOTTEN``."""
    return None if base - unlearned < MIN_FORGOTTEN else (after - unlearned) / (base - unlearned)


def recovery_scores(
    attacks: Mapping[str, RecoveryAttack],
    model,
    base_model: Callable[[], object],
    encoder,
    forget: Dataset,
    trainer_cfg,
    recalls: Callable[..., list[float]],
) -> tuple[dict, dict, list[dict]]:
    """Each attack's scores (metrics.json ``recovery``), the flat summary scores the loggers and
    the report read (``unlearn_after_<name>``, ``recovered_share_<name>``) and their declarations
    (for ``extra_scores``). ``recalls(model, questions, answers)`` is the per-row ROUGE-L recall the cell's
    eval computes; ``base_model()`` loads the model before unlearning."""
    questions, answers = list(forget["question"]), list(forget["answer"])
    device = next(model.parameters()).device
    unlearned = recalls(model, questions, answers)
    reference = base_model()
    base = recalls(reference, questions, answers)
    del reference
    details, summary, scores = {}, {}, []
    for name, attack in attacks.items():
        attacked = attack(model, encoder, forget, trainer_cfg)
        attacked_model = attacked.model.to(device)
        rows = attacked.scored if attacked.scored is not None else list(range(len(questions)))
        prompts = attacked.rewrites or {"": lambda i, q: q}
        after = {
            prompt: mean(recalls(attacked_model, [rewrite(i, questions[i]) for i in rows], [answers[i] for i in rows]))
            for prompt, rewrite in prompts.items()
        }
        strongest = max(after, key=after.get)
        entry = {
            "unlearn": after[strongest],
            "unlearn_before": mean([unlearned[i] for i in rows]),
            "unlearn_base": mean([base[i] for i in rows]),
            "n": len(rows),
        }
        entry["recovered_share"] = recovered_share(entry["unlearn"], entry["unlearn_before"], entry["unlearn_base"])
        if attacked.rewrites:
            entry |= {"strongest_prompt": strongest, "unlearn_by_prompt": after}
        details[name] = entry | (attacked.stats or {})
        summary |= {f"unlearn_after_{name}": entry["unlearn"], f"recovered_share_{name}": entry["recovered_share"]}
        scores += [
            Score(
                f"unlearn_after_{name}", f"Unlearn after recovery attack {name}", False, "recovery", f"Unlearn {name}"
            ),
            Score(
                f"recovered_share_{name}",
                f"  share of the forgotten recall {name} recovers",
                False,
                "recovery",
                f"Recovered {name}",
            ),
        ]
        del attacked, attacked_model
    return details, summary, as_json(tuple(scores))


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


__all__ = [
    "Attacked",
    "PromptAttack",
    "Quantize",
    "RecoveryAttack",
    "Relearn",
    "fake_quantize",
    "recovered_share",
    "recovery_scores",
]
