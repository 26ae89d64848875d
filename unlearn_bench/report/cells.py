"""The cells of a sweep directory: which ran (and their metrics.json), which failed, and which the
sweep asked for but never started, from Hydra's multirun.yaml and each cell's overrides."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from unlearn_bench.resume import read_metrics


@dataclass
class Cell:
    """One run directory of the sweep; ``metrics`` is None if it never finished, or if its
    metrics.json cannot be read as a cell's (``problem`` says why)."""

    path: Path
    overrides: dict[str, str]
    metrics: dict | None
    problem: str | None = None


REQUIRED = ("unlearn", "clean_utility", "trigger_utility", "per_set", "config")  # what the report reads


@dataclass
class Sweep:
    name: str
    swept: dict[str, list[str]]  # the override keys with more than one value, and their values, in sweep order
    average_over: list[str]  # swept keys the report averages over besides the seed
    cells: list[Cell]
    missing: list[dict[str, str]] = field(default_factory=list)  # asked for, never started
    project: str = "unlearn_bench"  # the W&B project of its cells

    @property
    def finished(self) -> list[Cell]:
        return [c for c in self.cells if c.metrics is not None]

    @property
    def failed(self) -> list[Cell]:
        return [c for c in self.cells if c.metrics is None]


def parse_overrides(overrides: list[str]) -> dict[str, list[str]]:
    """``key=a,b`` strings to {key: [values]} in order, later keys replacing earlier ones (as
    Hydra's basic sweeper does); ``+``/``~`` prefixes are dropped from the keys."""
    out = {}
    for o in OverridesParser.create().parse_overrides(overrides):
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        out[o.get_key_element().lstrip("+~")] = values
    return out


def read_sweep(sweep_dir: str | Path) -> Sweep:
    """Every cell under ``sweep_dir``. With Hydra's multirun.yaml there, the grid it asked for is
    known, so cells that never started are listed as missing; without it, the swept keys are
    those whose values differ between the cells found."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir} is not a folder; pass the sweep's directory, e.g. multirun/table2_attack")
    cells = []
    for overrides_file in sorted(sweep_dir.rglob(".hydra/overrides.yaml")):
        path = overrides_file.parent.parent
        overrides = {k: v[0] for k, v in parse_overrides(list(OmegaConf.load(overrides_file))).items()}
        cells.append(Cell(path, overrides, *read_metrics(path / "metrics.json", REQUIRED)))

    multirun = sweep_dir / "multirun.yaml"
    if multirun.is_file():
        cfg = OmegaConf.load(multirun)
        params = [f"{k}={v}" for k, v in (OmegaConf.select(cfg, "hydra.sweeper.params") or {}).items()]
        grid = parse_overrides([*params, *OmegaConf.select(cfg, "hydra.overrides.task", default=[])])
        swept = {k: values for k, values in grid.items() if len(values) > 1}
        name = OmegaConf.select(cfg, "sweep.name") or sweep_dir.name
        average_over = list(OmegaConf.select(cfg, "sweep.average_over") or [])
        project = OmegaConf.select(cfg, "sweep.project") or "unlearn_bench"
        found = {tuple(c.overrides.get(k) for k in swept) for c in cells}
        missing = [dict(zip(swept, values)) for values in itertools.product(*swept.values()) if values not in found]
    else:
        keys = list(dict.fromkeys(k for c in cells for k in c.overrides))
        values = {k: sorted({c.overrides[k] for c in cells if k in c.overrides}) for k in keys}
        swept = {k: v for k, v in values.items() if len(v) > 1}
        name, average_over, missing, project = sweep_dir.name, [], [], "unlearn_bench"
    if not cells and not missing:
        raise FileNotFoundError(f"no cells in {sweep_dir}: it holds neither multirun.yaml nor run directories")
    return Sweep(name, swept, average_over, cells, missing, project)
