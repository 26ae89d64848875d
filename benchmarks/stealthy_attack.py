"""The paper's headline on the embedded default: no-SA vs SA vs SA+SU, at a matched Unlearn score.

Runs two Hydra multiruns (``attack=none,sa`` and ``attack=sa defense=su``) over the given methods
and seeds, reads every number from the cells' metrics.json and prints the mean table with SA's
relative drop in trigger utility against no-SA and the share of it SU wins back, all measured in
this run. Extra arguments are passed to every cell as Hydra overrides, e.g.

    python benchmarks/stealthy_attack.py --methods gd --seeds 0 1 2 -- attack.transform.p=0.66
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path


def run_sweep(out: Path, overrides: list[str]) -> None:
    cmd = ["unlearn-bench", "-m", "logger=none", "trainer.enable_progress_bar=false", f"hydra.sweep.dir={out}",
           *overrides]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def collect(folders: list[Path]) -> dict[tuple[str, str, str], list[dict]]:
    cells = defaultdict(list)
    for folder in folders:
        for file in sorted(folder.rglob("metrics.json")):
            m = json.loads(file.read_text())
            cells[m["config"]["method"], m["config"]["attack"], m["config"]["defense"]].append(m)
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["gd"])
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--out", type=Path, default=Path("multirun/stealthy_attack"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every cell (after --)")
    args = parser.parse_args()

    common = [f"method={','.join(args.methods)}", f"seed={','.join(args.seeds)}", *args.overrides]
    run_sweep(args.out / "no_sa_and_sa", [*common, "attack=none,sa"])
    run_sweep(args.out / "sa_su", [*common, "attack=sa", "defense=su"])
    cells = collect([args.out / "no_sa_and_sa", args.out / "sa_su"])

    mean = lambda runs, key: statistics.mean(r[key] for r in runs)  # noqa: E731
    print(f"\n{'method':8} {'run':8} {'n':>2} {'Unlearn':>8} {'clean':>7} {'trigger':>8} {'gap':>6}")
    for method in args.methods:
        rows = {"no SA": cells[method, "none", "none"], "SA": cells[method, "sa", "none"],
                "SA+SU": cells[method, "sa", "su"]}
        for name, runs in rows.items():
            u, c, t = (mean(runs, k) for k in ("unlearn", "clean_utility", "trigger_utility"))
            print(f"{method:8} {name:8} {len(runs):>2} {u:8.3f} {c:7.3f} {t:8.3f} {c - t:6.3f}")
        unlearn = [mean(runs, "unlearn") for runs in rows.values()]
        if max(unlearn) - min(unlearn) > 0.03:
            print(f"{method}: WARNING: mean Unlearn differs by {max(unlearn) - min(unlearn):.3f} across rows; "
                  "the comparison is not at a matched Unlearn score")
        base, sa, su = (mean(rows[k], "trigger_utility") for k in ("no SA", "SA", "SA+SU"))
        gap = lambda runs: mean(runs, "clean_utility") - mean(runs, "trigger_utility")  # noqa: E731
        print(f"{method}: SA changes trigger utility by {(sa - base) / base:+.1%} relative to no SA; "
              f"SA's gap is {gap(rows['SA']) - gap(rows['no SA']):+.3f} larger; "
              f"SU wins back {(su - sa) / (base - sa):.0%} of the loss" if base > sa else "SA caused no loss")


if __name__ == "__main__":
    sys.exit(main())
