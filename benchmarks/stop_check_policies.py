"""What the stop check costs against where it stops, for policies of ``StopAtUnlearn``, replayed
over recorded runs (issue 15's goal: the check at most 15% of a cell's unlearning time, with
runs still compared at a matched Unlearn score).

Each cell (a string of Hydra overrides, e.g. ``"method=npo seed=1"``) runs its unlearning once,
as ``unlearn-bench`` does, with a recorder in the stop check's place. At every step it times the
training step, keeps the step's teacher-forced agreement (the check's progress signal), and
scores the forget set both ways a check can, timing each: the generated ROUGE-L recall (what the
stop is decided on) and its teacher-forced lower bound. It records ``--past`` steps beyond the
first step at the target, so that later stops can be replayed too.

Every policy is then replayed over every recording with the real callback class, its checks
answered (and timed) from the recording. Printed per cell and policy: the step the run stops at
and its Unlearn there; the checks (bound / generated); the checks' share of unlearning time
(their recorded seconds over those plus the training steps' up to the stop). The baseline, in
the same run, is what the stop was before issue 15: generating every ``every_n_steps`` steps.
``oracle`` is one generated check placed exactly at the baseline's stop: the least any policy
that stops there can cost, so the gap to it is what a better predictor of the crossing could win.
Policies are StopAtUnlearn's knobs: ``default`` (as configured), ``no-near`` (no band of
checks every ``every_n_steps`` near the target: checks only where the progress signal predicts
it), ``near/4`` (that band every 4 steps), ``every/6`` (no two checks closer than 6 steps)
and ``gap/40`` (``max_gap_steps`` 40). ``--grid`` replays every combination of :data:`GRID`
(those knobs and ``PROGRESS_STEP``) and prints the cheapest settings by their largest share over
the recordings, with how much later than the baseline they stop: whether any setting of the
knobs, exact or not, reaches a share.

    python benchmarks/stop_check_policies.py                       # 6 cells, about 10 minutes on 2 cores
    python benchmarks/stop_check_policies.py --cells "method=gd" -- unlearn.stop_at_unlearn=0.3
    python benchmarks/stop_check_policies.py --out runs/ --grid    # keeps runs/recordings.json
    python benchmarks/stop_check_policies.py --recordings runs/recordings.json --grid   # replays only, seconds
    python benchmarks/stop_check_policies.py --recordings runs/recordings.json --grid --cells "method=gd seed=0"
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from hydra import compose, initialize_config_module

import unlearn_bench.cell as cell
from unlearn_bench.callbacks import StopAtUnlearn
from unlearn_bench.eval.evaluate import generation_batch_size, rouge_lower_bound, score_set
from unlearn_bench.resolvers import register_resolvers

CELLS = ["method=gd seed=0", "method=gd seed=1", "method=npo seed=0", "method=idk seed=0", "attack=sa", "defense=su"]
POLICIES = {  # name: StopAtUnlearn attributes to set on the replay (none: as configured)
    "default": {},
    "no-near": {"NEAR": -math.inf},
    "near/4": {"every_n_steps": 4},
    "every/6": {"every_n_steps": 6},
    "gap/40": {"max_gap_steps": 40},
}
GRID = {  # --grid: StopAtUnlearn attributes, every combination replayed on every recording
    "every_n_steps": (2, 4, 6, 8),
    "NEAR": (-math.inf, 0.02, 0.05),
    "max_gap_steps": (10, 20, 40),
    "PROGRESS_STEP": (0.05, 0.1),
}


class Recorder(StopAtUnlearn):
    """In the stop check's place: every step, the training step's seconds, the agreement, and both
    scores of the forget set with their seconds; stops ``past`` steps after the target is first met."""

    def __init__(self, stop: StopAtUnlearn, past: int):
        self.__dict__.update(stop.__dict__)
        self.past, self.rows, self.first_reached, self.tick = past, [], None, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.tick = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        train = time.perf_counter() - self.tick
        start = time.perf_counter()
        bound = rouge_lower_bound(pl_module.model, self.encoder, self.forget, self.batch_size)
        bound_seconds, start = time.perf_counter() - start, time.perf_counter()
        scores = score_set(
            pl_module.model, self.encoder, self.forget, self.generation_batch_size, self.max_new_tokens, desc=None
        )
        self.rows.append(
            {
                "step": trainer.global_step,
                "train_seconds": train,
                "agreement": {split: float(value) for split, value in outputs["agreement"].items()},
                "bound": bound,
                "bound_seconds": bound_seconds,
                "recall": scores["rougeL_recall"],
                "recall_seconds": time.perf_counter() - start,
                "batches": int(trainer.num_training_batches),
                "accumulate": trainer.accumulate_grad_batches,
            }
        )
        if self.first_reached is None and scores["rougeL_recall"] <= self.target:
            self.first_reached = trainer.global_step
        if self.first_reached is not None and trainer.global_step >= self.first_reached + self.past:
            trainer.should_stop = True


def record(overrides: list[str], past: int, out: Path) -> list[dict]:
    """The recording of one cell's unlearning (see :class:`Recorder`)."""
    from unlearn_bench.run import run

    recorders = []

    def callbacks(cfg, encoder, eval_data, output_dir):
        found, stop = real_callbacks(cfg, encoder, eval_data, output_dir)
        recorders.append(Recorder(stop, past))
        return [recorders[-1] if c is stop else c for c in found], recorders[-1]

    real_callbacks = cell.unlearning_callbacks
    cell.unlearning_callbacks = callbacks
    try:
        with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
            run(
                compose(
                    "config",
                    overrides=[
                        f"paths.output_dir={out}",
                        "logger=none",
                        "skip_completed=false",
                        "trainer.enable_progress_bar=false",
                        "eval.metrics=[rouge]",
                        *overrides,
                    ],
                )
            )
    finally:
        cell.unlearning_callbacks = real_callbacks
    return recorders[0].rows


class Replay(StopAtUnlearn):
    """The real callback, its checks answered from a recording instead of the model."""

    def __init__(self, stop_args: dict, attributes: dict, rows: list[dict]):
        super().__init__(**stop_args)
        for name, value in attributes.items():
            setattr(self, name, value)
        self.row, self.check_seconds = None, 0.0

    def check(self, model) -> tuple[float, bool]:
        self.checks += 1
        if not self.generated:
            self.check_seconds += self.row["bound_seconds"]
            if self.row["bound"] > self.target:
                return self.row["bound"], False
        self.generated += 1
        self.check_seconds += self.row["recall_seconds"]
        return self.row["recall"], True


def replay(rows: list[dict], stop_args: dict, attributes: dict) -> dict | None:
    """Where a policy stops on a recording, and what its checks cost; None if it runs past it."""
    policy = Replay(stop_args, attributes, rows)
    trainer = SimpleNamespace(should_stop=False)
    train = 0.0
    for row in rows:
        trainer.global_step, trainer.num_training_batches = row["step"], row["batches"]
        trainer.accumulate_grad_batches = row["accumulate"]
        policy.row, train = row, train + row["train_seconds"]
        policy.on_train_batch_end(trainer, SimpleNamespace(model=None), {"agreement": row["agreement"]}, None, 0)
        if trainer.should_stop:
            share = policy.check_seconds / (train + policy.check_seconds)
            checks = f"{policy.checks - policy.generated}/{policy.generated}"
            return {"step": row["step"], "unlearn": row["recall"], "checks": checks, "share": share}
    return None


def dense(rows: list[dict], every: int, target: float) -> dict | None:
    """Generating every ``every`` steps (the stop before issue 15): where it stops, and its cost."""
    train = checks = 0.0
    for row in rows:
        train += row["train_seconds"]
        if row["step"] % every:
            continue
        checks += row["recall_seconds"]
        if row["recall"] <= target:
            n = row["step"] // every
            return {
                "step": row["step"],
                "unlearn": row["recall"],
                "checks": f"0/{n}",
                "share": checks / (train + checks),
            }
    return None


def oracle(rows: list[dict], base: dict | None) -> dict | None:
    """One generated check, at the baseline's stop: what any policy that stops there costs at least."""
    if base is None:
        return None
    done = [row for row in rows if row["step"] <= base["step"]]
    check = done[-1]["recall_seconds"]
    share = check / (sum(row["train_seconds"] for row in done) + check)
    return {"step": base["step"], "unlearn": base["unlearn"], "checks": "0/1", "share": share}


def grid(recordings: dict[str, list[dict]], stop_args: dict, every: int) -> list[dict]:
    """Every :data:`GRID` setting replayed on every recording, cheapest first (by the largest share
    over the recordings): its mean share too, and how far its stops fall from the baseline's (the
    most steps later, the most Unlearn lower). Settings that run past a recording are left out."""
    bases = [dense(rows, every, stop_args["target"]) for rows in recordings.values()]
    results = []
    for values in itertools.product(*GRID.values()):
        attributes = dict(zip(GRID, values))
        runs = [(base, replay(rows, stop_args, attributes)) for base, rows in zip(bases, recordings.values())]
        if any(base is None or stop is None for base, stop in runs):
            continue
        shares = [stop["share"] for _, stop in runs]
        results.append(
            {
                "attributes": attributes,
                "max_share": max(shares),
                "mean_share": sum(shares) / len(shares),
                "later": max(stop["step"] - base["step"] for base, stop in runs),
                "lower": max(base["unlearn"] - stop["unlearn"] for base, stop in runs),
            }
        )
    return sorted(results, key=lambda r: r["max_share"])


def mean(rows: list[dict], key: str) -> float:
    return sum(row[key] for row in rows) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=CELLS, help="Hydra overrides of each cell, one string per cell")
    parser.add_argument("--past", type=int, default=20, help="steps recorded after the target is first met")
    parser.add_argument(
        "--out", default=None, help="folder for the recordings (recordings.json); a temporary one if unset"
    )
    parser.add_argument(
        "--recordings", default=None, help="replay the --cells of this recordings.json (from --out); no recording"
    )
    parser.add_argument("--grid", action="store_true", help="also replay every setting of GRID; print the cheapest")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every cell (after --)")
    args = parser.parse_args()
    register_resolvers()
    out = Path(args.out or tempfile.mkdtemp(prefix="stop_check_policies-"))
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=args.overrides)
    target, every = cfg.unlearn.stop_at_unlearn, cfg.unlearn.stop_check_every_n_steps
    stop_args = dict(
        encoder=None,
        forget=None,
        target=target,
        every_n_steps=every,
        batch_size=cfg.eval.batch_size,
        max_new_tokens=cfg.eval.max_new_tokens,
        max_gap_steps=cfg.unlearn.stop_check_max_gap_steps,
        patience_epochs=cfg.unlearn.stop_patience_epochs,
        generation_batch_size=generation_batch_size(cfg.eval),
    )
    if args.recordings:  # the --cells among them
        saved = json.loads(Path(args.recordings).read_text())
        recordings = {k: v for k, v in saved.items() if k in args.cells}
        if not recordings:
            parser.error(f"none of --cells is recorded in {args.recordings}; it holds {sorted(saved)}")
    else:
        recordings = {}
        for i, name in enumerate(args.cells):
            recordings[name] = record([*args.overrides, *name.split()], args.past, out / f"cell{i}")
            (out / "recordings.json").write_text(json.dumps(recordings))
    print(f"\nstop at Unlearn <= {target}: step, Unlearn there, checks (bound/generated), share of unlearning time")
    shares = {}
    for name, rows in recordings.items():
        base = dense(rows, every, target)
        results = {f"every {every}": base, "oracle": oracle(rows, base)}
        results |= {policy: replay(rows, stop_args, attributes) for policy, attributes in POLICIES.items()}
        print(
            f"\n{name}: {len(rows)} steps recorded; a step {mean(rows, 'train_seconds'):.3f} s, a generated check "
            f"{mean(rows, 'recall_seconds'):.2f} s, a bound {mean(rows, 'bound_seconds'):.2f} s"
        )
        for policy, r in results.items():
            if r is None:
                print(f"  {policy:10s} did not stop within the recording")
                continue
            shares.setdefault(policy, []).append(r["share"])
            line = f"  {policy:10s} step {r['step']:4d}  Unlearn {r['unlearn']:.3f}  checks {r['checks']:>6s}"
            moved = (
                ""
                if base is None
                else f"  ({r['step'] - base['step']:+d} steps, {r['unlearn'] - base['unlearn']:+.3f})"
            )
            print(f"{line}  share {r['share']:5.1%}{moved}")
    print()
    for policy, values in shares.items():
        print(f"policy={policy} mean_share={sum(values) / len(values):.3f} max_share={max(values):.3f} n={len(values)}")
    if not args.grid:
        return
    settings = grid(recordings, stop_args, every)
    print(f"\n{len(settings)} GRID settings stop within every recording; the cheapest, and the cheapest never later:")
    never_later = [s for s in settings if s["later"] <= 0]
    if not never_later:
        print("grid_never_later none: every setting stops later than the baseline in some recording")
    for label, setting in [*(("grid", s) for s in settings[:5]), *(("grid_never_later", s) for s in never_later[:1])]:
        knobs = " ".join(f"{k}={'off' if v == -math.inf else v}" for k, v in setting["attributes"].items())
        print(
            f"{label} max_share={setting['max_share']:.3f} mean_share={setting['mean_share']:.3f} "
            f"later={setting['later']:+d} lower={setting['lower']:+.3f} {knobs}"
        )


if __name__ == "__main__":
    main()
