"""Every shipped config file, enumerated from conf/ and multirun_sweeps/ (not listed by hand):
each composes, passes the start-up checks and builds its components, and names itself as its
file is named, so a new file is tested the moment it is added."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.types import RunMode

from conftest import CONF, SWEEPS
from unlearn_bench.config import validate
from unlearn_bench.preflight import build_components
from unlearn_bench.resolvers import register_resolvers

GROUPS = ("method", "attack", "defense", "model", "data")
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))]
SWEEP_NAMES = sorted(path.stem for path in SWEEPS.glob("*.yaml"))
EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))


def composed(*overrides, hydra_node=False):
    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        return compose("config", overrides=[*overrides, "paths.output_dir=unused"], return_hydra_config=hydra_node)


def test_every_group_has_options():
    assert {group for group, _ in OPTIONS} == set(GROUPS) and len(SWEEP_NAMES) >= 12 and "smoke" in EXPERIMENTS


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_validates_builds_and_names_itself(group, option):
    cfg = composed(f"{group}={option}")
    assert cfg[group].name == option
    validate(cfg)
    components = build_components(cfg)
    assert components.loss.splits  # the method reads at least one split
    if group == "attack":
        assert (components.attack is None) == (option == "none")


@pytest.mark.parametrize("name", SWEEP_NAMES)
def test_every_sweep_composes_names_itself_and_sweeps_without_dash_m(name):
    cfg = composed(f"multirun_sweeps={name}")
    assert cfg.sweep.name == name
    validate(cfg)
    build_components(cfg)
    assert composed(f"multirun_sweeps={name}", hydra_node=True).hydra.mode == RunMode.MULTIRUN


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_validates_and_builds(name):
    cfg = composed(f"experiment={name}")
    validate(cfg)
    build_components(cfg)
