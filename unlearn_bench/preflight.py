"""What a cell or an eval checks before it loads a model or trains: the config (keys, types,
ranges, and the knobs of the method, attack and defense, named as the user typed them), every
data split it will read (row by row), the model folders it is given and the folders it writes.

Every problem is collected and reported at once, one line each, and all of it runs before
Lightning is imported (the entry points import the recipes only afterwards)."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from unlearn_bench.attacks import Attack
from unlearn_bench.config import check_arguments, is_number, validate
from unlearn_bench.errors import ArgumentError, ConfigError, DataError, Problems, problem_lines
from unlearn_bench.extras import check_logger
from unlearn_bench.folders import check_writable, model_path
from unlearn_bench.losses import ComposedLoss

# The keys an entry point gives a model folder or hub id with.
CELL_MODEL_KEYS = ("model.pretrained", "finetune.full_model", "finetune.retain_model")
EVAL_MODEL_KEYS = (*CELL_MODEL_KEYS, "model_dir", "retain_model_dir")


class Components(NamedTuple):
    """What the method, attack and defense configs instantiate, before any training."""

    attack: Attack | None  # rewrites the forget set (the Stealthy Attack)
    forget_filter: Callable | None  # drops forget samples before unlearning (anomaly filter)
    loss: ComposedLoss  # the method's terms plus the defense's
    derived: dict[str, Callable]  # builders of splits derived from forget and retain (IDK, SU)
    after_unlearning: Callable | None  # acts on the unlearned model (continued fine-tuning)
    recovery: dict[str, Callable]  # recovery attacks, scored after the eval on copies of the model


class Checklist:
    """Runs checks one after another, keeping the line of each user-facing failure."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, check: Callable, *args):
        """``check(*args)``, or None after noting its failure."""
        try:
            return check(*args)
        except Exception as e:
            lines = problem_lines(e)
            if lines is None:  # a bug, not a bad input: its traceback matters
                raise
            self.lines += lines
            return None

    def raise_any(self) -> None:
        if self.lines:
            raise Problems(self.lines)


def check_cell(cfg: DictConfig) -> Components:
    """Everything ``unlearn-bench`` can check before training; the built components if all is well."""
    checklist = Checklist()
    checklist(validate, cfg)
    checklist(check_logger, cfg.get("logger"))
    components = checklist(build_components, cfg)
    _check_folders(checklist, cfg, CELL_MODEL_KEYS)
    if components is not None and not checklist.lines:
        checklist(_check_depth, cfg, components.loss)
    stages = ("unlearn",) if cfg.finetune.full_model and cfg.finetune.retain_model else ("finetune", "unlearn")
    optimizers = {f"{s}.optimizer": cfg[s].optimizer for s in stages}
    optimizers = {where: node for where, node in optimizers.items() if node and "_target_" in node}  # else: validate
    for where, node in optimizers.items():
        checklist(check_optimizer_knobs, node, where)
    if not checklist.lines:  # the first optimizer built imports torch._dynamo (about a second): not for an error above
        for where, node in optimizers.items():
            checklist(build_optimizer, node, where)
    if not checklist.lines:  # the data checks read the (now valid) data config
        _check_data(checklist, cfg, training=True)
    checklist.raise_any()
    return components


def check_eval(cfg: DictConfig) -> None:
    """Everything ``unlearn-bench-eval`` can check before it loads the model."""
    checklist = Checklist()
    checklist(validate, cfg, ("model_dir", "retain_model_dir"))
    checklist(_no_recovery, cfg)
    for name in cfg.eval.get("extra_metrics") or {}:  # as check_cell does, through build_components
        checklist(_build, cfg, f"eval.extra_metrics.{name}")
    _check_folders(checklist, cfg, EVAL_MODEL_KEYS)
    if not checklist.lines:
        _check_data(checklist, cfg, training=False)
    checklist.raise_any()


def _no_recovery(cfg: DictConfig) -> None:
    if cfg.get("recovery"):
        raise ConfigError(
            f"recovery={list(cfg.recovery)}: recovery attacks compare with the model before unlearning, which a "
            "cell has and unlearn-bench-eval does not; run them in a cell (unlearn-bench ... recovery=[...])"
        )


def build_components(cfg: DictConfig) -> Components:
    """Instantiate the attack, the defense's forget filter, the method's loss with the defense's
    extra terms, the builders of derived splits and the recovery attacks. A knob out of range or a
    key its class does not take fails here, named by the key the user typed; every such problem is
    listed."""
    problems = []

    def build(where: str):
        try:
            return _build(cfg, where)
        except ConfigError as e:
            problems.append(str(e))
            return None

    attack = build("attack.transform") if cfg.attack.get("transform") else None
    forget_filter = build("defense.forget_filter") if cfg.defense.get("forget_filter") else None
    after_unlearning = build("defense.after_unlearning") if cfg.defense.get("after_unlearning") else None
    for name in cfg.eval.get("extra_metrics") or {}:  # built again by the eval; here for their errors
        build(f"eval.extra_metrics.{name}")
    recovery = {name: build(f"recovery.{name}") for name in cfg.get("recovery") or {}}
    loss = build("method.loss")
    extra_terms = {name: build(f"defense.loss_terms.{name}") for name in cfg.defense.get("loss_terms") or {}}
    derived = {
        name: build(f"{group}.splits.{name}")
        for group in ("method", "defense")
        for name in cfg[group].get("splits") or {}
    }
    if problems:
        raise ConfigError("\n".join(problems))
    for name, term in extra_terms.items():
        loss.add(name, term)
    available = ["forget", "retain", *derived]
    unknown = loss.splits - set(available)
    if unknown:
        raise ConfigError(f"the loss reads splits {sorted(unknown)}; available: {available}")
    return Components(attack, forget_filter, loss, derived, after_unlearning, recovery)


def _build(cfg: DictConfig, where: str):
    """The object the ``_target_`` node at ``where`` builds, after refusing keys that no class under
    it takes; a ConfigError naming the key otherwise."""
    for path, node in _target_nodes(cfg, where):
        check_arguments(node, path)
    return _instantiate(cfg, where)


def _target_nodes(cfg: DictConfig, *roots: str) -> Iterator[tuple[str, DictConfig]]:
    """Every ``_target_`` node under ``roots``, with its dotted path."""
    stack = [(root, OmegaConf.select(cfg, root)) for root in roots]
    while stack:
        where, node = stack.pop()
        if isinstance(node, DictConfig):
            if "_target_" in node:
                yield where, node
            stack += [(f"{where}.{key}", node[key]) for key in node if not str(key).startswith("_")]
        elif isinstance(node, ListConfig):
            stack += [(f"{where}[{i}]", item) for i, item in enumerate(node)]


def _instantiate(cfg: DictConfig, where: str):
    try:
        return instantiate(OmegaConf.select(cfg, where))
    except InstantiationException as e:
        match = re.search(r"full_key: (\S+)", str(e))
        raise ConfigError(_named(cfg, match.group(1) if match else where, e.__cause__ or e)) from None


def _named(cfg: DictConfig, where: str, error: Exception) -> str:
    """The error of the node at ``where`` as the user would fix it: an out-of-range argument
    under the key they typed (``defense.eta``, not the SU term's ``weight``)."""
    if not isinstance(error, ArgumentError):
        return f"{where}: {error}"
    raw = OmegaConf.to_container(OmegaConf.select(cfg, where), resolve=False).get(error.argument)
    source = re.fullmatch(r"\$\{([\w.]+)\}", raw) if isinstance(raw, str) else None
    key = source.group(1) if source else f"{where}.{error.argument}"
    return f"{key}={error.value!r} {error.requirement}"


def check_optimizer_knobs(node: DictConfig, where: str) -> None:
    """An optimizer's knobs against its signature, so that a misspelt or wrong-typed one fails here,
    named, and not at the first unlearning step after the fine-tunes (hours at paper scale): a knob
    whose default is a number (``lr``, ``weight_decay``) or a boolean must be one."""
    if not node.get("_partial_"):
        raise ConfigError(f"{where}._partial_ must be true: the optimizer is given the parameters when training starts")
    check_arguments(node, where)
    try:
        target = get_object(node._target_)
    except Exception as e:
        raise ConfigError(f"{where}._target_={node._target_!r} cannot be imported ({e})") from None
    defaults = {name: p.default for name, p in inspect.signature(target).parameters.items()}
    for key, value in OmegaConf.to_container(node, resolve=True).items():
        default = defaults.get(key)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{where}.{key}={value!r} must be true or false ({node._target_}'s {key})")
        if is_number(default) and not is_number(value):
            raise ConfigError(f"{where}.{key}={value!r} must be a number ({node._target_}'s {key})")


def build_optimizer(node: DictConfig, where: str) -> None:
    """The optimizer built on one parameter: its own checks of ranges (torch: "Invalid learning rate")."""
    import torch

    try:
        instantiate(node)([torch.nn.Parameter(torch.zeros(1))])
    except Exception as e:
        raise ConfigError(f"{where}: {node._target_} refuses its knobs: {str(e).splitlines()[0]}") from None


def _check_depth(cfg: DictConfig, loss: ComposedLoss) -> None:
    """Each loss term against the number of decoder layers of the model it will unlearn (RMU's
    layer), where the config tells it without loading weights: the embedded architecture, or a
    local checkpoint's config.json. A hub id is checked only once loaded (at the first step)."""
    given = cfg.finetune.get("full_model") or cfg.model.get("pretrained")
    if not given:
        layers = cfg.model.architecture.get("num_hidden_layers")
    else:
        config = Path(given).expanduser() / "config.json"
        layers = json.loads(config.read_text()).get("num_hidden_layers") if config.is_file() else None
    if not isinstance(layers, int):
        return
    problems = []
    for name, term in loss.terms.items():
        try:
            term.check_depth(layers)
        except ArgumentError as e:
            where = f"method.loss.terms.{name}" if name in cfg.method.loss.terms else f"defense.loss_terms.{name}"
            problems.append(_named(cfg, where, e))
    if problems:
        raise ConfigError("\n".join(dict.fromkeys(problems)))  # two terms on one key: one line


def _check_folders(checklist: Checklist, cfg: DictConfig, model_keys: tuple[str, ...]) -> None:
    """The model folders the config gives, and the cache and run folders it writes."""
    for key in model_keys:
        value = OmegaConf.select(cfg, key, default=None)
        if value:
            checklist(model_path, value, key)
    for key in ("paths.cache_dir", "paths.output_dir"):
        checklist(check_writable, OmegaConf.select(cfg, key), key)


def _check_data(checklist: Checklist, cfg: DictConfig, training: bool) -> None:
    """Read every split the run will read, row by row, each named by the key that chose it. A
    key whose value derives from a failed one (``data.eval_sets.forget`` from
    ``data.forget_split``) is not reported again."""
    source = checklist(_instantiate, cfg, "data.source")
    if source is None:
        return
    raw = OmegaConf.to_container(cfg.data, resolve=False)
    failed_keys, failed_splits, read = [], set(), set()
    for key, split in _named_splits(cfg, training):
        raw_value = _raw(raw, key.removeprefix("data."))
        derived_from_failed = any(f"{k}}}" in str(raw_value) for k in failed_keys)
        if derived_from_failed or (isinstance(split, str) and split in failed_splits):
            failed_keys.append(key)
            continue
        if isinstance(split, str) and split in read:
            continue
        ok = checklist(_read_split, source, key, split)
        if not ok:
            failed_keys.append(key)
        if isinstance(split, str):
            (read if ok else failed_splits).add(split)


def _named_splits(cfg: DictConfig, training: bool) -> Iterator[tuple[str, object]]:
    """(config key, split) for every split the run reads; a multiple-choice set may be a spec."""
    data = cfg.data
    if training:
        yield "data.forget_split", data.forget_split
        yield "data.retain_split", data.retain_split
        for role in ("full", "retain"):
            if not cfg.finetune.get(f"{role}_model") or (role == "full" and not cfg.finetune.get("retain_model")):
                for i, split in enumerate(data.finetune_splits[role]):  # full: the tokenizer's corpus too
                    yield f"data.finetune_splits.{role}[{i}]", split
    for name, split in data.eval_sets.items():
        yield f"data.eval_sets.{name}", split
    if data.holdout_split is not None:
        yield "data.holdout_split", data.holdout_split
    for name, spec in data.multiple_choice_sets.items():
        yield f"data.multiple_choice_sets.{name}", spec if isinstance(spec, str) else OmegaConf.to_container(spec)


def _read_split(source, key: str, split) -> bool:
    """Read (and so check) the split or multiple-choice set that ``key`` names; True once read."""
    from unlearn_bench.data.multiple_choice import load_multiple_choice  # with datasets: once the config is sound

    hint = "; or set data.holdout_split=null to skip the membership inference" if key == "data.holdout_split" else ""
    try:
        if key.startswith("data.multiple_choice_sets."):
            load_multiple_choice(split, source)
        else:
            source.load(split)
        return True
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{key}={split!r}: {e}{hint}") from None
    except ValueError as e:  # DataError, or a malformed multiple-choice spec
        raise DataError(f"{key}={split!r}: {e}") from None


def _raw(container, dotted: str):
    """The raw (uninterpolated) value at ``dotted`` (``finetune_splits.full[0]``) of a container."""
    value = container
    for part in re.findall(r"[^.\[\]]+", dotted):
        value = value[int(part)] if isinstance(value, list) else value.get(part)
    return value
