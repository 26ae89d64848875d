"""The paper's headline on the embedded default: no-SA vs SA vs SA+SU at a matched Unlearn score,
over several base models (fine-tune seeds) and unlearning seeds.

Runs two Hydra multiruns (``attack=none,sa`` and ``attack=sa defense=su``, each over
``finetune.seed`` × ``seed``), reads every number from the cells' metrics.json and prints, per base
model and over all of them: the base model's templated ROUGE-L before unlearning, the mean row of
each setting (with the 95% interval over base models × seeds overall), how many cells stopped at
the step cap or stalled instead of reaching the Unlearn target, SA's relative drop in trigger utility against no SA,
how much it widens the clean − trigger gap, and the share of the drop SU wins back. The last
lines compare these with the targets of issue 12 (not tuned to them: they are what was measured).
``results.md`` in ``--out`` holds the same tables for README. Extra arguments are Hydra overrides
for every cell, e.g.

    python benchmarks/stealthy_attack.py --methods gd --seeds 0 1 2 --base-seeds 0 1 2 --jobs 2
    python benchmarks/stealthy_attack.py --base-seeds 0 --eta 5 -- attack.transform.p=0.66
    python benchmarks/stealthy_attack.py --collect-only   # re-read an earlier run's cells
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from unlearn_bench.report.table import ci95

ROWS = {"no SA": ("none", "none"), "SA": ("sa", "none"), "SA+SU": ("sa", "su")}
TARGETS = {  # issue 12's "done when", checked against what this run measured
    "base templated ROUGE-L, every base model": 0.9,
    "SA's relative drop in trigger utility, overall": 0.30,
    "SA's relative drop in trigger utility, every base model": 0.15,
    "widening of the clean - trigger gap, overall": 0.10,
    "share of the drop SU wins back, overall": 0.50,
    "share of the drop SU wins back, every base model (> 0)": 0.0,
}


def run_sweep(out: Path, overrides: list[str], jobs: int) -> None:
    """One multirun; with ``jobs`` > 1, that many cells at once (joblib), one thread each: the
    portable CPU numerics give the same weights on 1 or 2 threads (benchmarks/cpu_numerics.py)."""
    cmd = [
        "unlearn-bench",
        "-m",
        "logger=none",
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={out}",
        *overrides,
    ]
    env = None
    if jobs > 1:
        cmd += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def collect(folders: list[Path]) -> dict[tuple, list[dict]]:
    """metrics.json of every cell, by (method, attack, defense)."""
    cells = defaultdict(list)
    for folder in folders:
        for file in sorted(folder.rglob("metrics.json")):
            m = json.loads(file.read_text())
            cells[m["config"]["method"], m["config"]["attack"], m["config"]["defense"]].append(m)
    return cells


def mean(runs: list[dict], key: str) -> float:
    return statistics.mean(r[key] for r in runs)


def gap(runs: list[dict]) -> float:
    return mean(runs, "clean_utility") - mean(runs, "trigger_utility")


def effects(rows: dict[str, list[dict]]) -> dict[str, float] | None:
    """SA's relative drop in trigger utility, the widening of the gap, and SU's share won back."""
    if not all(rows.values()):
        return None
    base, sa, su = (mean(rows[k], "trigger_utility") for k in ROWS)
    return {
        "drop": (base - sa) / base,
        "gap": gap(rows["SA"]) - gap(rows["no SA"]),
        "recovery": (su - sa) / (base - sa) if base > sa else float("nan"),
    }


def base_rouge(runs: list[dict]) -> float:
    """The lowest templated ROUGE-L before unlearning over the base model's scored sets."""
    return min(s["templated"] for r in runs for s in r["base_model"].values())


def table(method: str, rows: dict[str, list[dict]], intervals: bool) -> list[str]:
    """Markdown rows: n, cells short of the target (step cap or stalled), Unlearn, clean, trigger
    (mean ± 95% interval)."""
    lines = []
    for name, runs in rows.items():
        if not runs:
            continue
        capped = sum(r.get("reached_stop_at_unlearn") is False for r in runs)
        cols = []
        for key in ("unlearn", "clean_utility", "trigger_utility"):
            values = [r[key] for r in runs]
            cols.append(
                f"{statistics.mean(values):.3f} ± {ci95(values):.3f}" if intervals else f"{statistics.mean(values):.3f}"
            )
        lines.append(f"| {method} | {name} | {len(runs)} | {capped} | " + " | ".join(cols) + f" | {gap(runs):.3f} |")
    return lines


def report(cells: dict[tuple, list[dict]], methods: list[str]) -> tuple[list[str], list[str]]:
    """The printed report and the checks against TARGETS."""
    header = [
        "| method | run | n | short of target | Unlearn | clean | trigger | gap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out, checks = [], []
    for method in methods:
        rows = {name: cells[(method, *key)] for name, key in ROWS.items()}
        bases = sorted({r["config"].get("finetune_seed") for runs in rows.values() for r in runs}, key=str)
        per_base = {}
        out += [f"## {method}: per base model (finetune.seed), mean over unlearning seeds", "", *header]
        for b in bases:
            sub = {name: [r for r in runs if r["config"].get("finetune_seed") == b] for name, runs in rows.items()}
            per_base[b] = (effects(sub), base_rouge([r for runs in sub.values() for r in runs]))
            out += [line.replace(f"| {method} |", f"| {method} (base {b}) |", 1) for line in table(method, sub, False)]
        out += [
            "",
            f"## {method}: all base models × seeds, mean ± 95% t-interval",
            "",
            *header,
            *table(method, rows, True),
            "",
        ]
        for b, (eff, rouge) in per_base.items():
            text = (
                "missing rows"
                if eff is None
                else (f"SA drop {eff['drop']:+.1%}, gap widened {eff['gap']:+.3f}, SU wins back {eff['recovery']:.0%}")
            )
            out.append(f"- {method} base {b}: templated ROUGE-L before unlearning ≥ {rouge:.3f} on every set; {text}")
        overall = effects(rows)
        if overall is None:
            continue
        out.append(
            f"- {method} overall: SA drop {overall['drop']:+.1%}, gap widened {overall['gap']:+.3f}, "
            f"SU wins back {overall['recovery']:.0%}"
        )
        unlearn = [mean(runs, "unlearn") for runs in rows.values()]
        capped = sum(r.get("reached_stop_at_unlearn") is False for runs in rows.values() for r in runs)
        if max(unlearn) - min(unlearn) > 0.03 or capped:
            out.append(
                f"- {method}: WARNING: not at a matched Unlearn score (mean Unlearn spans "
                f"{min(unlearn):.3f}–{max(unlearn):.3f}; {capped} cells stopped short of the target: "
                "step cap or stalled)"
            )
        effs = [e for e, _ in per_base.values() if e is not None]
        measured = [
            min(r for _, r in per_base.values()),
            overall["drop"],
            min(e["drop"] for e in effs),
            overall["gap"],
            overall["recovery"],
            min(e["recovery"] for e in effs),
        ]
        for (what, target), value in zip(TARGETS.items(), measured):
            ok = value > target if "(> 0)" in what else value >= target
            checks.append(f"check {method}: {what}: {value:.3f} (target {target}) {'met' if ok else 'missed'}")
    return out, checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["gd"])
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--base-seeds", nargs="+", default=["0", "1", "2"], help="finetune.seed values")
    parser.add_argument("--out", type=Path, default=Path("multirun/stealthy_attack"))
    parser.add_argument("--eta", help="SU's defense.eta for the SA+SU cells (default: defense/su.yaml's)")
    parser.add_argument("--jobs", type=int, default=1, help="cells run at once (joblib), one thread each")
    parser.add_argument("--collect-only", action="store_true", help="report the cells already in --out")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every cell (after --)")
    args = parser.parse_args()

    folders = [args.out / "no_sa_and_sa", args.out / "sa_su"]
    if not args.collect_only:
        common = [
            f"method={','.join(args.methods)}",
            f"finetune.seed={','.join(args.base_seeds)}",
            f"seed={','.join(args.seeds)}",
            *args.overrides,
        ]
        run_sweep(folders[0], [*common, "attack=none,sa"], args.jobs)
        eta = [f"defense.eta={args.eta}"] if args.eta is not None else []
        run_sweep(folders[1], [*common, "attack=sa", "defense=su", *eta], args.jobs)
    lines, checks = report(collect(folders), args.methods)
    print("\n".join(["", *lines, "", *checks]))
    (args.out / "results.md").write_text("\n".join([*lines, "", *(f"- {c}" for c in checks), ""]))


if __name__ == "__main__":
    sys.exit(main())
