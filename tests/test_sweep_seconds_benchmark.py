"""benchmarks/sweep_seconds.py on hand-made cells: README's summed stop-check shares come from it."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "sweep_seconds.py"


def cell(folder: Path, method: str, unlearn: float, stop_check: float | None, wall: float) -> None:
    seconds = {"inputs": 1.0, "unlearn": unlearn, "eval": 2.0}
    if stop_check is not None:
        seconds["stop_check"] = stop_check
    folder.mkdir(parents=True)
    metrics = {"seconds": seconds, "wall_seconds": wall, "config": {"method": method}}
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_sums_every_cell_under_the_folders(tmp_path):
    cell(tmp_path / "sweep" / "method=gd,seed=0", "gd", unlearn=10.0, stop_check=4.0, wall=20.0)
    cell(tmp_path / "sweep" / "method=gd,seed=1", "gd", unlearn=6.0, stop_check=1.0, wall=12.0)
    cell(tmp_path / "sweep" / "method=npo,seed=0", "npo", unlearn=4.0, stop_check=None, wall=8.0)  # no target
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "sweep")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == ("sweep_seconds cells=3 wall_s=40 unlearn_s=20.0 stop_check_s=5.0 stop_check/unlearn=0.250")
    per_method = {line.split()[0]: line for line in lines if line.startswith("  ") and "cells" in line}
    assert "31.2%" in per_method["gd"]  # 5 of 16 s
    assert "0.0%" in per_method["npo"]


def test_a_folder_without_cells_is_an_error_that_says_what_to_give(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "no metrics.json under" in proc.stderr and "sweep's folder" in proc.stderr
