"""Structured schemas for the plain (non-``_target_``) config sections, checked at start-up.

Hydra already rejects unknown group options (``method=foo``); these schemas add early, readable
errors for wrong keys, types and ranges inside the sections the recipes read directly.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from unlearn_bench.errors import ConfigError
from unlearn_bench.eval.scores import PASSES

SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")


def _count(value) -> bool:
    """Whether ``value`` is an int and not a bool (which Python counts as one: ``true`` is not 1 sample)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """Whether ``value`` is an int or float and not a bool (``true`` is no learning rate)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_seed(value) -> bool:
    """Whether ``value`` is a seed numpy takes (Lightning's ``seed_everything`` refuses others)."""
    return _count(value) and 0 <= value < 2**32


def _check_optimizer(where: str, optimizer) -> None:
    if optimizer is None or "_target_" not in optimizer:
        raise ConfigError(f"{where}.optimizer needs a _target_, e.g. torch.optim.AdamW with _partial_: true")


@dataclass
class StageConfig:
    """One training stage (fine-tune or unlearn): schedule and optimiser."""

    epochs: int = 1
    batch_size: int = 8
    optimizer: Any = None
    scheduler: str = "constant"
    warmup_ratio: float = 0.0
    seed: int = 0
    # Unlearning only: stop once forget ROUGE-L recall <= this (checks at least every_n and at
    # most max_gap steps apart, see callbacks.StopAtUnlearn); null = never. Also stop once the
    # recall has not improved for stop_patience_epochs epochs (null = train on to the cap).
    stop_at_unlearn: Any = None
    stop_check_every_n_steps: int = 2
    stop_check_max_gap_steps: int = 20
    stop_patience_epochs: Any = None

    def check(self, where: str) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"{where}.epochs and {where}.batch_size must be >= 1")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"{where}.scheduler={self.scheduler!r}; choose one of {SCHEDULERS}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"{where}.warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        if not _is_seed(self.seed):
            raise ConfigError(f"{where}.seed={self.seed} must be in [0, 2**32) (numpy's seeds)")
        target = self.stop_at_unlearn
        if target is not None and not (is_number(target) and 0 <= target <= 1):
            raise ConfigError(f"{where}.stop_at_unlearn={target!r} must be null or a number in [0, 1]")
        if not 1 <= self.stop_check_every_n_steps <= self.stop_check_max_gap_steps:
            raise ConfigError(
                f"{where}.stop_check_every_n_steps={self.stop_check_every_n_steps} must be >= 1 and "
                f"<= {where}.stop_check_max_gap_steps={self.stop_check_max_gap_steps}"
            )
        if self.stop_patience_epochs is not None and not (
            _count(self.stop_patience_epochs) and self.stop_patience_epochs >= 1
        ):
            raise ConfigError(
                f"{where}.stop_patience_epochs={self.stop_patience_epochs!r} must be null or an integer >= 1"
            )
        _check_optimizer(where, self.optimizer)


@dataclass
class FinetuneConfig(StageConfig):
    """The fine-tune stage, or the published checkpoints that replace it."""

    # A hub id or save_pretrained folder of an already fine-tuned model (e.g. open-unlearning's
    # TOFU "full" and "retain" checkpoints); set, that model is used and not trained.
    full_model: Any = None
    retain_model: Any = None


@dataclass
class EvalConfig:
    """Greedy generation for the ROUGE-L scores."""

    batch_size: int = 64
    generation_batch_size: Any = None  # int or null (batch_size): answers generated at once
    max_new_tokens: int = 48
    max_samples: Any = None  # int or null: cap on samples per eval set, for quick runs
    trigger_templates: list[str] = field(default_factory=list)
    extra_trigger_templates: dict[str, list[str]] = field(default_factory=dict)
    min_k: float = 0.4  # share of least likely tokens in the min-k% membership score
    curve_every_n_steps: Any = None  # int or null: score Unlearn/utility every n unlearning steps
    curve_max_samples: int = 32  # per set, for the curve's quick scores
    metrics: list[str] = field(default_factory=lambda: list(PASSES))  # the eval passes to run (eval/scores.py)
    extra_metrics: dict[str, Any] = field(default_factory=dict)  # name -> a metric object's _target_ node

    def check(self, where: str) -> None:
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ConfigError(f"{where}.batch_size and {where}.max_new_tokens must be >= 1")
        if self.generation_batch_size is not None and (
            not _count(self.generation_batch_size) or self.generation_batch_size < 1
        ):
            raise ConfigError(
                f"{where}.generation_batch_size={self.generation_batch_size!r} must be null (batch_size) or an int >= 1"
            )
        if not 0 < self.min_k <= 1:
            raise ConfigError(f"{where}.min_k={self.min_k} must be in (0, 1]")
        if self.curve_every_n_steps is not None and (
            not _count(self.curve_every_n_steps) or self.curve_every_n_steps < 1
        ):
            raise ConfigError(f"{where}.curve_every_n_steps={self.curve_every_n_steps!r} must be null or an int >= 1")
        unknown = [m for m in self.metrics if m not in PASSES]
        if unknown or "rouge" not in self.metrics:
            raise ConfigError(
                f"{where}.metrics={self.metrics} must name passes of {list(PASSES)} and include rouge "
                f"(Unlearn and the utilities); unknown: {unknown}"
            )
        if self.curve_max_samples < 1:
            raise ConfigError(f"{where}.curve_max_samples must be >= 1")
        if self.max_samples is not None and (not _count(self.max_samples) or self.max_samples < 1):
            raise ConfigError(f"{where}.max_samples={self.max_samples!r} must be null or an int >= 1")
        named = {"trigger_templates": self.trigger_templates}
        named |= {f"extra_trigger_templates.{k}": v for k, v in self.extra_trigger_templates.items()}
        for key, templates in named.items():
            bad = [t for t in templates if t.count("{q}") != 1]
            if bad or not templates:
                raise ConfigError(f"{where}.{key} needs templates with {{q}} exactly once; bad: {bad}")


@dataclass
class DataConfig:
    """Which splits play which role; ``source`` builds the :class:`~unlearn_bench.data.source.TofuSource`."""

    name: str = "?"
    source: Any = None
    forget_split: str = "forget10"
    retain_split: str = "retain90"
    finetune_splits: dict[str, list[str]] = field(default_factory=dict)
    eval_sets: dict[str, str] = field(default_factory=dict)
    forget_set: str = "forget"
    utility_sets: list[str] = field(default_factory=list)
    normalised_sets: list[str] = field(default_factory=list)  # probability normalised over the options
    holdout_split: Any = None  # authors never trained on: the non-members of the MIA; null skips it
    # name -> a split of the source, or {path, split, subset} of a set of its own (a hub id or file)
    multiple_choice_sets: dict[str, Any] = field(default_factory=dict)

    def check(self, where: str) -> None:
        if self.holdout_split is not None and not isinstance(self.holdout_split, str):
            raise ConfigError(f"{where}.holdout_split={self.holdout_split!r} must be a split name or null")
        for name, spec in self.multiple_choice_sets.items():
            if not isinstance(spec, str | dict) or (isinstance(spec, dict) and "path" not in spec):
                raise ConfigError(
                    f"{where}.multiple_choice_sets.{name}={spec!r} must be a split of the data or a set with a "
                    f"path, e.g. +data/multiple_choice@{where}.multiple_choice_sets.{name}=local"
                )
        if set(self.finetune_splits) != {"full", "retain"}:
            raise ConfigError(f"{where}.finetune_splits needs exactly the keys 'full' and 'retain'")
        named = [self.forget_set, *self.utility_sets, *self.normalised_sets]
        unknown = [s for s in named if s not in self.eval_sets]
        if unknown or not self.utility_sets:
            raise ConfigError(
                f"{where}.forget_set/utility_sets name {unknown or 'no utility set'}; "
                f"they must be non-empty keys of {where}.eval_sets={sorted(self.eval_sets)}"
            )


LORA_STAGES = ("finetune", "unlearn")
DTYPES = ("float32", "bfloat16", "float16", "float64")


@dataclass
class LoraSchema:
    """``model.lora``: peft's LoRA adapters (unlearn_bench/lora.py); read only once a stage
    builds them, which for unlearning-only LoRA comes after the fine-tunes, so checked here."""

    enabled: bool = False
    stages: list[str] = field(default_factory=lambda: list(LORA_STAGES))
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: Any = "all-linear"  # peft's: a name, or a list of module names

    def check(self, where: str) -> None:
        if not self.stages or any(s not in LORA_STAGES for s in self.stages):
            raise ConfigError(f"{where}.stages={self.stages} must name one or both of {list(LORA_STAGES)}")
        for key, ok, rule in (
            ("r", self.r >= 1, ">= 1"),
            ("alpha", self.alpha > 0, "> 0"),
            ("dropout", 0 <= self.dropout < 1, "in [0, 1)"),
        ):
            if not ok:
                raise ConfigError(f"{where}.{key}={getattr(self, key)} must be {rule}")
        names = [self.target_modules] if isinstance(self.target_modules, str) else self.target_modules
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(
                f"{where}.target_modules={self.target_modules!r} must be a module name (all-linear) or a list of them"
            )


@dataclass
class ModelSchema:
    """The model: the embedded ``architecture`` (a ``_target_`` config) or ``pretrained`` weights,
    and how they are loaded and prompted."""

    name: str = "?"
    pretrained: Any = None  # a hub id or save_pretrained folder (preflight checks the folder)
    dtype: str = "float32"
    tokenizer_vocab_size: int = 2048  # the embedded model's tokenizer, trained on the data
    architecture: Any = None
    prompt_format: str = "Question: {question}\nAnswer:"
    max_length: int = 512
    trust_remote_code: bool = False
    attn_implementation: Any = None  # null (transformers' default) or a name, e.g. flash_attention_2
    gradient_checkpointing: bool = False
    lora: LoraSchema = field(default_factory=LoraSchema)

    def check(self, where: str) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"{where}.dtype={self.dtype!r}; choose one of {DTYPES}")
        if self.prompt_format.count("{question}") != 1:
            raise ConfigError(f"{where}.prompt_format={self.prompt_format!r} needs {{question}} exactly once")
        if self.max_length < 8 or self.tokenizer_vocab_size < 64:
            raise ConfigError(f"{where}.max_length must be >= 8 and {where}.tokenizer_vocab_size >= 64")
        if self.attn_implementation is not None and not isinstance(self.attn_implementation, str):
            raise ConfigError(f"{where}.attn_implementation={self.attn_implementation!r} must be null or a name")
        self.lora.check(f"{where}.lora")


SCHEMAS = {
    "model": ModelSchema,
    "finetune": FinetuneConfig,
    "unlearn": StageConfig,
    "eval": EvalConfig,
    "data": DataConfig,
}


def check_strategy(trainer_cfg: DictConfig) -> None:
    """Refuse strategies that leave the trained weights sharded across ranks (FSDP, DeepSpeed
    ZeRO-3): every eval of a cell runs on the training device with full weights, and gathering
    them for generation is not implemented, so such a run would fail only after training."""
    strategy = trainer_cfg.get("strategy")
    spec = OmegaConf.to_container(strategy, resolve=True) if isinstance(strategy, DictConfig) else strategy
    name = str(spec.get("_target_", "") if isinstance(spec, dict) else spec or "").lower()
    stage = spec.get("stage") if isinstance(spec, dict) else None
    if "fsdp" in name or "stage_3" in name or ("deepspeed" in name and stage == 3):
        raise ConfigError(
            f"trainer.strategy={name!r} shards the weights across GPUs, and evaluating a sharded model is not "
            "supported (every eval runs on the training device with full weights). For models whose full "
            "fine-tuning does not fit one GPU use trainer=deepspeed (ZeRO-2: optimiser state and gradients "
            "sharded, weights whole), or model.lora.enabled=true with trainer=gpu or trainer=ddp"
        )


# What a cell reads at the top level: conf/config.yaml's groups and keys. Anything else came from
# a `+key=value` override (Hydra's own hint for a misspelt key) that nothing would read.
TOP_LEVEL_KEYS = (
    "model",
    "data",
    "method",
    "attack",
    "defense",
    "recovery",
    "trainer",
    "logger",
    "eval",
    "paths",
    "seed",
    "skip_completed",
    "sweep",
    "finetune",
    "unlearn",
)


def check_top_level(cfg: DictConfig, entry_point_keys: tuple[str, ...] = ()) -> None:
    """Refuse top-level keys nothing reads and a seed that is not an integer."""
    known = (*TOP_LEVEL_KEYS, *entry_point_keys)
    unknown = [k for k in cfg if k not in known]
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {unknown}: nothing reads them (a misspelt key added with '+'?). "
            f"Remove them; the top-level keys are {list(known)}"
        )
    seed = cfg.get("seed")
    if not _is_seed(seed):
        raise ConfigError(f"seed={seed!r} must be an integer in [0, 2**32) (numpy's seeds), e.g. seed=0")
    if "skip_completed" in cfg and not isinstance(cfg.skip_completed, bool):
        raise ConfigError(f"skip_completed={cfg.skip_completed!r} must be true or false")


# What the cell reads from the file of each component group; any other key of such a file must be
# a knob that an interpolation uses (`method.retain_weight` in `weight: ${method.retain_weight}`).
GROUP_SLOTS = {
    "method": ("name", "loss", "splits", "lr"),  # lr: read by unlearn.optimizer unless a preset sets its own
    "attack": ("name", "transform"),
    "defense": ("name", "forget_filter", "loss_terms", "splits", "after_unlearning"),
}


def check_unread_keys(cfg: DictConfig) -> None:
    """Refuse a key of a method, attack or defense that nothing reads: neither a slot the cell reads
    nor a knob an interpolation uses. A misspelt slot (``loss_term:`` in a defense file) would
    otherwise drop the defense's terms without a word."""
    interpolations = []
    stack = [OmegaConf.to_container(cfg, resolve=False)]
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            stack += list(node.values()) if isinstance(node, dict) else node
        elif isinstance(node, str) and "${" in node:
            interpolations.append(node)
    read = set(re.findall(r"\b(method|attack|defense)\.(\w+)", " ".join(interpolations)))
    problems = [
        f"{group}.{key} is read by nothing (not one of the slots {list(slots)} and no interpolation uses it): "
        f"a misspelt key in conf/{group}/{cfg[group].get('name', '?')}.yaml or a +{group}.{key} override?"
        for group, slots in GROUP_SLOTS.items()
        if isinstance(cfg.get(group), DictConfig)
        for key in cfg[group]
        if key not in slots and (group, key) not in read
    ]
    if problems:
        raise ConfigError("\n".join(problems))


def check_arguments(node: DictConfig, where: str) -> None:
    """Refuse keys of a ``_target_`` node that its target takes no argument for (a misspelt knob
    in a method, attack or defense file; ``experiment=smoke``'s ``num_authors`` under
    ``data=tofu``), before anything is built."""
    try:
        target = get_object(node._target_)
    except Exception:  # an unimportable target: instantiate reports it with its own message
        return
    if not callable(target):
        raise ConfigError(f"{where}._target_={node._target_!r} is a module, not a class or function")
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in node if not str(k).startswith("_") and k not in params]
    if unknown:
        hint = " (experiment=smoke sets it for the embedded data only)" if unknown[0] == "num_authors" else ""
        raise ConfigError(
            f"{where}.{unknown[0]} is not an argument of {node._target_} (it takes "
            f"{[p for p in params if p != 'self']}); remove it with ~{where}.{unknown[0]}{hint}"
        )


def validate(cfg: DictConfig, entry_point_keys: tuple[str, ...] = ()) -> None:
    """Check the top-level keys (``entry_point_keys``: those an entry point adds, like
    ``model_dir``), the trainer's strategy and each plain section against its schema; raise one
    :class:`ConfigError` that lists every problem, one line each."""
    problems = []
    checks = [lambda: check_top_level(cfg, entry_point_keys), lambda: check_unread_keys(cfg)]
    if OmegaConf.select(cfg, "data.source._target_"):
        checks.append(lambda: check_arguments(cfg.data.source, "data.source"))
    if "trainer" in cfg:
        checks.append(lambda: check_strategy(cfg.trainer))
    checks += [lambda key=key, schema=schema: check_section(cfg, key, schema) for key, schema in SCHEMAS.items()]
    for check in checks:
        try:
            check()
        except ConfigError as e:
            problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(problems))


def check_section(cfg: DictConfig, key: str, schema: type) -> None:
    """The plain section ``key`` against its schema: known keys, types, ranges."""
    section = OmegaConf.select(cfg, key)
    if section is None:
        raise ConfigError(f"the config has no '{key}' section")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.to_container(section, resolve=True))
        checked = OmegaConf.to_object(merged)
    except MissingMandatoryValue as e:  # a `???` of a config file (a local multiple-choice set's path)
        raise ConfigError(f"{key}.{e.full_key} must be set: add {key}.{e.full_key}=<value>") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad value in {key}.{e.full_key}: {str(e.msg).splitlines()[0]}") from None
    checked.check(key)
