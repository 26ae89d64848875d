"""Where a sweep's time went: the ``seconds`` of every cell's metrics.json under the given folders,
summed per stage, and the stop checks' share of unlearning, overall and per method.

    python benchmarks/sweep_seconds.py multirun/table2_attack multirun/table3_su

Cells run in parallel (``hydra/launcher=joblib``) overlap, so the sums are cell-seconds, not the
sweep's wall-clock time; fine-tunes that a sweep runs before its cells (``sweep_start``) are in
no cell's ``seconds``. Ends with ``sweep_seconds cells=... wall_s=... unlearn_s=... stop_check_s=...
stop_check/unlearn=...``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def sums(files: list[Path]) -> tuple[Counter, dict[str, Counter]]:
    """Seconds per stage (and ``wall``) over all cells, and the unlearning and check seconds per method."""
    total, per_method = Counter(), {}
    for file in files:
        metrics = json.loads(file.read_text())
        seconds = metrics["seconds"]
        total.update(seconds)
        total["wall"] += metrics["wall_seconds"]
        method = per_method.setdefault(metrics["config"]["method"], Counter())
        method.update({"cells": 1, "unlearn": seconds["unlearn"], "stop_check": seconds.get("stop_check", 0.0)})
    return total, per_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="sweep folders (multirun/<sweep>) or cell folders")
    args = parser.parse_args()
    files = sorted(f for folder in args.folders for f in folder.rglob("metrics.json"))
    if not files:
        raise SystemExit(f"no metrics.json under {', '.join(map(str, args.folders))}: give a sweep's folder")
    total, per_method = sums(files)
    print(f"{len(files)} cells, {total['wall']:.0f} cell-seconds")
    for stage, value in total.most_common():
        if stage not in ("wall", "stop_check"):
            print(f"  {stage:18s} {value:8.1f} s  {value / total['wall']:6.1%}")
        if stage == "unlearn":  # the checks run inside the unlearning stage
            print(f"    of which checks  {total['stop_check']:8.1f} s  {total['stop_check'] / total['wall']:6.1%}")
    print("stop checks / unlearning, per method:")
    for name, method in sorted(per_method.items()):
        check, unlearn = method["stop_check"], method["unlearn"]
        print(f"  {name:10s} {method['cells']:4d} cells  {check:7.1f} / {unlearn:7.1f} s  {check / unlearn:6.1%}")
    print(
        f"\nsweep_seconds cells={len(files)} wall_s={total['wall']:.0f} unlearn_s={total['unlearn']:.1f} "
        f"stop_check_s={total['stop_check']:.1f} stop_check/unlearn={total['stop_check'] / total['unlearn']:.3f}"
    )


if __name__ == "__main__":
    main()
