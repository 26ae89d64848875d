"""OmegaConf resolvers used by the configs."""

from __future__ import annotations

import re

from omegaconf import OmegaConf

from unlearn_bench.data.templates import DEFAULT_ATTACK_TEMPLATES


def retain_of(forget_split: str) -> str:
    """TOFU's matching retain split: forget05 -> retain95, forget01 -> retain99."""
    match = re.fullmatch(r"forget(\d\d)", forget_split)
    if not match:
        raise ValueError(f"cannot derive the retain split of {forget_split!r}; set data.retain_split explicitly")
    return f"retain{100 - int(match.group(1))}"


def holdout_of(forget_split: str) -> str:
    """TOFU's matching holdout split (authors never trained on): forget10 -> holdout10."""
    if not re.fullmatch(r"forget\d\d", forget_split):
        raise ValueError(f"cannot derive the holdout split of {forget_split!r}; set data.holdout_split explicitly")
    return forget_split.replace("forget", "holdout")


def default_refusals() -> list[str]:
    """IDK's refusal answers; imported when a config resolves them, as their module imports
    ``datasets`` (seconds), which ``--help`` and config errors should not wait for."""
    from unlearn_bench.data.derived import DEFAULT_REFUSALS

    return list(DEFAULT_REFUSALS)


def fused_adamw(precision) -> bool:
    """Whether AdamW may be fused under this ``trainer.precision``: not under Lightning's AMP
    (``16-mixed``, ``bf16-mixed``), which refuses to clip gradients for an optimizer that unscales
    them itself, as the fused one does. Elsewhere fused is several times the default loop's speed."""
    return not (str(precision).endswith("-mixed") or str(precision) in ("16", "bf16"))


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("retain_of"):
        OmegaConf.register_new_resolver("retain_of", retain_of)
    if not OmegaConf.has_resolver("holdout_of"):
        OmegaConf.register_new_resolver("holdout_of", holdout_of)
    if not OmegaConf.has_resolver("fused_adamw"):
        OmegaConf.register_new_resolver("fused_adamw", fused_adamw)
    if not OmegaConf.has_resolver("default_attack_templates"):
        OmegaConf.register_new_resolver("default_attack_templates", lambda: list(DEFAULT_ATTACK_TEMPLATES))
    if not OmegaConf.has_resolver("default_refusals"):
        OmegaConf.register_new_resolver("default_refusals", default_refusals)
