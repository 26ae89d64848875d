"""benchmarks/stop_check_policies.py's replay and baselines on a hand-made recording: README's
stop-check shares come from them."""

import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("stop_check_policies", ROOT / "benchmarks" / "stop_check_policies.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

TARGET = 0.3
ARGS = dict(encoder=None, forget=None, target=TARGET, every_n_steps=2, batch_size=8, max_new_tokens=8)


def recording(bound: float = 0.0) -> list[dict]:
    """40 steps of 0.1 s; recall (100 - 2 step) / 100, first at the target at step 35; a generated
    check 0.5 s, a bound 0.2 s; the agreement falling 0.02 a step."""
    return [
        {
            "step": step,
            "train_seconds": 0.1,
            "agreement": {"forget": 1.0 - 0.02 * step},
            "bound": bound,
            "bound_seconds": 0.2,
            "recall": (100 - 2 * step) / 100,
            "recall_seconds": 0.5,
            "batches": 5,
            "accumulate": 1,
        }
        for step in range(1, 41)
    ]


def test_the_baseline_checks_every_n_steps_and_the_oracle_once():
    rows = recording()
    base = bench.dense(rows, 2, TARGET)
    # even steps 2..36 generate: 18 x 0.5 s of checks against 36 x 0.1 s of training
    assert base == {"step": 36, "unlearn": 0.28, "checks": "0/18", "share": pytest.approx(9.0 / 12.6)}
    assert bench.oracle(rows, base)["share"] == pytest.approx(0.5 / 4.1)


def test_the_replay_drives_the_real_callback_step_by_step():
    # a bound that never settles a check, and a near-target band that takes every recall: the
    # callback generates every 2 steps, so its replay must be the baseline, checks and cost
    rows = recording(bound=0.0)
    replayed = bench.replay(rows, ARGS, {"NEAR": math.inf})
    assert (replayed["step"], replayed["unlearn"]) == (36, 0.28)
    assert replayed["checks"] == "0/18"  # the first check tried the bound (0.2 s) and generated
    assert replayed["share"] == pytest.approx(9.2 / 12.8)


def test_a_check_settled_by_the_bound_costs_the_bound_only():
    rows = recording(bound=0.9)  # above the target: no check ever generates
    assert bench.replay(rows, ARGS, {}) is None
    stop = bench.replay(recording(bound=0.0), ARGS, {})
    assert stop["step"] >= 35 and stop["unlearn"] <= TARGET  # recall first reaches the target at step 35


def test_the_grid_replays_every_setting_cheapest_first():
    rows = recording(bound=0.0)
    settings = bench.grid({"cell": rows}, ARGS, every=2)
    assert len(settings) == math.prod(len(values) for values in bench.GRID.values())  # each stops on this recording
    shares = [s["max_share"] for s in settings]
    assert shares == sorted(shares)
    # the callback's own defaults are one of the settings, with the share its plain replay gives
    defaults = {"every_n_steps": 2, "NEAR": 0.05, "max_gap_steps": 20, "PROGRESS_STEP": 0.05}
    (default,) = [s for s in settings if s["attributes"] == defaults]
    replayed = bench.replay(rows, ARGS, {})
    assert default["max_share"] == pytest.approx(replayed["share"])
    assert default["later"] == replayed["step"] - bench.dense(rows, 2, TARGET)["step"]
    # checks at least 8 steps apart cost less than every 2 steps near the target
    sparse = [s for s in settings if s["attributes"]["every_n_steps"] == 8]
    assert max(s["max_share"] for s in sparse) < default["max_share"]
    # and no setting stops before recall first reaches the target (step 35; the baseline stops at 36)
    assert min(s["later"] for s in settings) >= -1
