"""How long a bad input waits for its error, and what the start-up checks cost.

Prints, measured in this run on this machine:
- the seconds from launching ``unlearn-bench`` to its exit on ``--help``, on a misspelt group
  option (Hydra's error), on a bad knob (``attack.transform.p=1.5``) and on a malformed data file, against the
  seconds Python needs just to ``import lightning`` (what every error waited for before the checks
  came first): the ratio is the share of that wait still left;
- the seconds of :func:`~unlearn_bench.preflight.check_cell` itself (imports excluded) on the
  embedded default and, when ``../shared/data/tofu`` exists, on real TOFU (every split read row by row).

    python benchmarks/startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REAL_TOFU = Path(__file__).resolve().parents[2] / "shared" / "data" / "tofu"


def seconds(cmd: list[str], env: dict, repeats: int) -> float:
    """Median wall-clock seconds of ``cmd`` (its exit status is not checked: errors are the point)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, timeout=600)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def check_seconds(overrides: list[str], out: Path, repeats: int) -> float:
    """Median seconds of check_cell on a composed config, after one warm-up (data generated, imports done)."""
    from hydra import compose, initialize_config_module

    from unlearn_bench.preflight import check_cell
    from unlearn_bench.resolvers import register_resolvers

    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"paths.output_dir={out}"])
    check_cell(cfg)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        check_cell(cfg)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="startup."))
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(work / "cache")}
    bad_data = work / "tofu"
    from unlearn_bench.data import synthetic
    from unlearn_bench.data.source import quiet_datasets

    with quiet_datasets():
        synthetic.write(bad_data, num_authors=6)
    (bad_data / "forget05.json").write_text(json.dumps({"question": "Q?", "answer": 7}) + "\n")
    cli = [sys.executable, "-m", "unlearn_bench.run", f"hydra.run.dir={work / 'run'}"]
    subprocess.run([*cli, "experiment=smoke", "unlearn.epochs=0"], env=env, capture_output=True)  # warm the caches

    baseline = seconds([sys.executable, "-c", "import lightning"], env, args.repeats)
    rows = [("import lightning (the old wait before any error)", baseline)]
    cases = {
        "--help": ["--help"],
        "method=foo (Hydra's error)": ["method=foo"],
        "attack=sa attack.transform.p=1.5": ["attack=sa", "attack.transform.p=1.5"],
        "a malformed forget split (data=tofu)": [
            "data=tofu",
            f"data.source.path={bad_data}",
            "data.forget_split=forget05",
            "data.holdout_split=null",
        ],
    }
    for label, overrides in cases.items():
        rows.append((f"unlearn-bench {label}, to its error", seconds([*cli, *overrides], env, args.repeats)))
    os.environ["UNLEARN_BENCH_CACHE"] = env["UNLEARN_BENCH_CACHE"]
    rows.append(("check_cell on the embedded default (imports excluded)", check_seconds([], work / "o", args.repeats)))
    if REAL_TOFU.is_dir():
        real = ["data=tofu", f"data.source.path={REAL_TOFU}", "data.holdout_split=null"]
        rows.append(
            ("check_cell on real TOFU, every split (imports excluded)", check_seconds(real, work / "o", args.repeats))
        )
    width = max(len(label) for label, _ in rows)
    print(f"{'':<{width}}  seconds  / import lightning")
    for label, value in rows:
        print(f"{label:<{width}}  {value:7.2f}  {value / baseline:6.2f}")


if __name__ == "__main__":
    main()
