"""docs/extending.md's worked examples, run as written: each example's files are written to an
empty folder, and its command runs a smoke cell from there that must use the new part."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

DOC = (ROOT / "docs" / "extending.md").read_text()
FILES = dict(re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", DOC, flags=re.S))
RUNS = re.findall(r"<!-- run: (.*?) -->\n```bash\n(.*?)```", DOC, flags=re.S)


def test_the_doc_has_an_example_for_each_slot():
    assert {
        "conf/method/my_gd.yaml",
        "conf/attack/shout.yaml",
        "conf/defense/longest_filter.yaml",
        "my_attacks.py",
        "my_defenses.py",
        "my_recovery.py",
        "conf/recovery/noise.yaml",
        "my_data/forget.json",
    } <= set(FILES)
    assert "my_metrics.py" in FILES and len(RUNS) == 6


@pytest.mark.parametrize("overrides, shown", RUNS, ids=[r[0].split()[0] for r in RUNS])
def test_a_worked_example_runs_as_written(tmp_path, overrides, shown):
    for path, text in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    overrides = overrides.split()
    for override in overrides:  # the command shown is the command run (the test adds only experiment=smoke's fix)
        assert override.strip("'") in shown.replace("'", "") or override == "~data.source.num_authors", override
    cmd = [
        sys.executable,
        "-m",
        "unlearn_bench.run",
        "--config-dir",
        "./conf",
        *overrides,
        "experiment=smoke",
        "logger=none",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    group, option = overrides[0].split("=")
    if group in ("method", "attack", "defense"):
        assert metrics["config"][group] == option
    if group in ("attack", "defense"):  # the embedded smoke data's forget split
        n = len(next((tmp_path / "cache" / "data").glob("tofu_synth-*/forget10.json")).read_text().splitlines())
    if option == "shout":
        assert metrics["attack"] == {"n_attacked": len(range(0, n, 2)), "attacked": list(range(0, n, 2))}
    if option == "longest_filter":
        assert metrics["defense"]["n_dropped"] == round(0.25 * n) == len(set(metrics["defense"]["dropped"]))
    if group == "recovery":
        assert metrics["recovery"]["noise"]["std"] == 0.01 and metrics["recovery"]["noise"]["n"] > 0
    if group == "+metric":
        assert metrics["forget_nll"] > 0 and [s["key"] for s in metrics["extra_scores"]] == ["forget_nll"]
        assert re.search(r"mean answer NLL on the forget set \(higher is better\) +\d", proc.stdout)
    if group == "data":
        assert metrics["config"]["data"] == "tofu" and metrics["per_set"]["forget"]["n"] == 2
