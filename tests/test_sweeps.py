"""Paper sweeps end to end: the smoke variant of table2_attack and its report, resuming an
interrupted sweep, and what the W&B, TensorBoard and CSV loggers hold for a cell."""

import json
import os
import signal
import statistics
import struct
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module
from wandb.proto import wandb_internal_pb2

from conftest import TINY, TINY_SYNTH
from unlearn_bench.report.cli import main as report_main
from unlearn_bench.resolvers import register_resolvers
from unlearn_bench.resume import completed_metrics, config_hash, copied_metrics, write_metrics

pytestmark = pytest.mark.slow


def sweep_cmd(sweep_dir, *overrides):
    return [
        sys.executable,
        "-m",
        "unlearn_bench.run",
        "-m",
        f"hydra.sweep.dir={sweep_dir}",
        "logger=none",
        "trainer.enable_progress_bar=false",
        *overrides,
    ]


def env(cache_dir):
    return {**os.environ, "UNLEARN_BENCH_CACHE": str(cache_dir), "WANDB_MODE": "offline"}


def finished(sweep_dir) -> dict[Path, float]:
    return {p: p.stat().st_mtime_ns for p in Path(sweep_dir).rglob("metrics.json")}


def test_smoke_table2_report_has_a_row_per_cell_matching_their_metrics(tmp_path, cache_dir):
    sweep = tmp_path / "table2"
    proc = subprocess.run(
        sweep_cmd(sweep, "multirun_sweeps=table2_attack_smoke"),
        capture_output=True,
        text=True,
        env=env(cache_dir),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(finished(sweep)) == 3 * 2 * 2  # methods x forget splits x attacks, one seed

    assert report_main([str(sweep)]) == 0
    # The expected numbers, straight from each cell's metrics.json and resolved config.
    expected = defaultdict(list)
    for metrics_file in sweep.rglob("metrics.json"):
        metrics = json.loads(metrics_file.read_text())
        cfg = yaml.safe_load((metrics_file.parent / ".hydra" / "config.yaml").read_text())
        key = (cfg["method"]["name"], cfg["data"]["forget_split"], cfg["attack"]["name"])
        expected[key].append(metrics)
    lines = (sweep / "table.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = {tuple(r[:3]): dict(zip(header, r)) for r in (line.split(",") for line in lines[1:])}
    assert set(rows) == set(expected) and len(rows) == 12
    for key, cells in expected.items():
        row = rows[key]
        assert int(row["n"]) == len(cells) == 1
        for column, value in (
            ("Unlearn mean", "unlearn"),
            ("Clean avg mean", "clean_utility"),
            ("Trigger avg mean", "trigger_utility"),
            ("Model utility mean", "model_utility"),
        ):
            assert float(row[column]) == pytest.approx(statistics.mean(c[value] for c in cells), abs=1e-6)
        retain = statistics.mean(c["per_set"]["retain"]["trigger_rougeL_recall"] for c in cells)
        assert float(row["Trigger retain mean"]) == pytest.approx(retain, abs=1e-6)
    md = (sweep / "table.md").read_text()
    assert md.count("\n| ") == 1 + 12 and "Cells not in the table" not in md
    assert (sweep / "utility.png").stat().st_size > 0 and (sweep / "table.tex").is_file()


def test_smoke_robustness_report_has_each_recovery_attack_per_defense(tmp_path, cache_dir):
    sweep = tmp_path / "robustness"
    cmd = sweep_cmd(sweep, "multirun_sweeps=robustness_smoke", "method=gd")  # defenses none, su
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(cache_dir), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = {
        yaml.safe_load((f.parent / ".hydra" / "config.yaml").read_text())["defense"]["name"]: json.loads(f.read_text())
        for f in sweep.rglob("metrics.json")
    }
    assert set(cells) == {"none", "su"}
    assert report_main([str(sweep)]) == 0
    lines = (sweep / "table.csv").read_text().splitlines()
    header, rows = lines[0].split(","), {r.split(",")[0]: r.split(",") for r in lines[1:]}
    for attack in ("relearn", "relearn_paraphrased", "quantize8", "quantize4", "prompt"):
        for defense, metrics in cells.items():
            value = float(rows[defense][header.index(f"Unlearn {attack} mean")])
            assert value == pytest.approx(metrics["recovery"][attack]["unlearn"], abs=1e-6)


def test_an_interrupted_sweep_run_again_finishes_only_the_remaining_cells(tmp_path, cache_dir):
    sweep = tmp_path / "resume"
    cmd = sweep_cmd(sweep, "multirun_sweeps=table2_attack_smoke", "method=gd")  # 2 splits x 2 attacks
    first = subprocess.Popen(
        cmd, env=env(cache_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 600
    while len(finished(sweep)) < 2 and first.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)  # interrupted mid-sweep, as a killed job would be
    first.wait()
    before = finished(sweep)
    assert 2 <= len(before) < 4, "the sweep should have been interrupted before its last cell"

    second = subprocess.run(cmd, env=env(cache_dir), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    after = finished(sweep)
    assert len(after) == 4
    rerun = [p for p, mtime in after.items() if before.get(p) != mtime]
    assert len(rerun) == 4 - len(before)  # each finished cell untouched, each other one run once
    assert (second.stdout + second.stderr).count("Skipping the cell") == len(before)

    third = subprocess.run(
        [*cmd, "skip_completed=false"], env=env(cache_dir), capture_output=True, text=True, timeout=600
    )
    assert third.returncode == 0 and all(finished(sweep)[p] != t for p, t in after.items())


def test_a_cell_whose_config_changed_is_not_skipped(tmp_path):
    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=["experiment=smoke"])
        changed = compose("config", overrides=["experiment=smoke", "method.retain_weight=3"])
        cosmetic = compose("config", overrides=["experiment=smoke", "logger=none", "trainer.enable_progress_bar=false"])
    write_metrics(tmp_path, {"unlearn": 0.1, "config_hash": config_hash(cfg)})
    assert completed_metrics(tmp_path, cfg)["unlearn"] == 0.1
    assert completed_metrics(tmp_path, cosmetic) is not None  # loggers and progress bars do not change results
    assert completed_metrics(tmp_path, changed) is None
    (tmp_path / "metrics.json").write_text("{truncated")
    assert completed_metrics(tmp_path, cfg) is None


def test_a_cell_another_run_directory_already_ran_is_copied_not_run(tmp_path):
    """table3_su's cells without a defense are table2_attack's attacked cells: same config hash."""
    register_resolvers()
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        table2 = compose("config", overrides=["experiment=smoke", "attack=sa", "sweep.name=table2_attack", cache])
        table3 = compose("config", overrides=["experiment=smoke", "attack=sa", "sweep.name=table3_su", cache])
        curves = compose("config", overrides=["experiment=smoke", "eval.curve_every_n_steps=2", cache])
    for name, cfg in (("table2", table2), ("curves", curves)):
        write_metrics(tmp_path / name, {"unlearn": 0.1, "config_hash": config_hash(cfg)}, cfg.paths.cache_dir)
    assert completed_metrics(tmp_path / "elsewhere", table3) is None  # not in its own folder
    assert copied_metrics(tmp_path / "elsewhere", table3)["unlearn"] == 0.1
    assert completed_metrics(tmp_path / "elsewhere", table3)["unlearn"] == 0.1  # now it is
    assert copied_metrics(tmp_path / "curves_elsewhere", curves) is None  # its curve.csv is not cached


def wandb_records(run_file: Path) -> list:
    """The records of an offline W&B run file (what `wandb sync` uploads): a 7-byte header, then
    32 KiB blocks of records, each with a 7-byte header (CRC32, length, type: full/first/middle/last)."""
    data, block, pos, chunk, records = run_file.read_bytes(), 32768, 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def run_cell(out, cache_dir, *overrides):
    cmd = [sys.executable, "-m", "unlearn_bench.run", *TINY, *TINY_SYNTH, f"hydra.run.dir={out}", *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(cache_dir), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def test_the_offline_wandb_run_of_a_cell_holds_its_config_and_final_metrics(tmp_path, cache_dir):
    metrics = run_cell(
        tmp_path, cache_dir, "logger=wandb", "sweep.name=table2_attack", "attack=sa", "eval.curve_every_n_steps=1"
    )
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    records = wandb_records(next(run_dir.glob("run-*.wandb")))
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert (run.project, run.run_group) == ("unlearn_bench", "table2_attack")
    assert set(run.tags) == {"method=gd", "attack=sa", "defense=none", "data=tofu_synth", "model=tiny_llama"}
    config = {
        item.key: json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "config"
        for item in r.config.update
    }
    assert config["method"]["name"] == "gd" and config["attack"]["transform"]["p"] == 0.33 and config["seed"] == 0
    assert config["unlearn"]["batch_size"] == 8  # the full resolved config, not just the choices
    summary = {
        item.key: json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "summary"
        for item in r.summary.update
        if item.key
    }
    assert summary["final/unlearn"] == pytest.approx(metrics["unlearn"])
    assert summary["final/trigger_utility"] == pytest.approx(metrics["trigger_utility"])
    assert summary["final/retain/trigger_rougeL_recall"] == pytest.approx(
        metrics["per_set"]["retain"]["trigger_rougeL_recall"]
    )
    assert list(run_dir.glob("files/media/table/results_*.table.json")), "no results table"
    assert list(run_dir.glob("files/media/images/curve_*.png")), "no curve image"


def tensorboard_scalars(events: Path) -> dict[str, float]:
    """The last value of each scalar in a TensorBoard event file (TFRecord: length, CRC, Event, CRC)."""
    from tensorboardX.proto import event_pb2

    data, pos, out = events.read_bytes(), 0, {}
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        event = event_pb2.Event()
        event.ParseFromString(data[pos + 12 : pos + 12 + length])
        out |= {v.tag: v.simple_value for v in event.summary.value}
        pos += 12 + length + 4
    return out


def test_tensorboard_and_csv_loggers_hold_the_config_and_final_metrics(tmp_path, cache_dir):
    metrics = run_cell(tmp_path / "tb", cache_dir, "logger=tensorboard", "trainer.log_every_n_steps=1")
    scalars = {}  # TensorBoard reads every event file of a run's folder
    for events in (tmp_path / "tb" / "tensorboard").rglob("events.out.tfevents.*"):
        scalars |= tensorboard_scalars(events)
    assert scalars["final/unlearn"] == pytest.approx(metrics["unlearn"])
    assert any(tag.startswith("train/") for tag in scalars)  # per-step losses too
    hparams = yaml.safe_load(next((tmp_path / "tb" / "tensorboard").rglob("hparams.yaml")).read_text())
    assert hparams["method"]["name"] == "gd"

    metrics = run_cell(tmp_path / "csv", cache_dir, "logger=csv")
    rows = (next((tmp_path / "csv" / "csv").rglob("metrics.csv"))).read_text().splitlines()
    final = [dict(zip(rows[0].split(","), r.split(","))) for r in rows[1:]]
    assert float(next(r["final/unlearn"] for r in final if r["final/unlearn"])) == pytest.approx(metrics["unlearn"])
    hparams = yaml.safe_load(next((tmp_path / "csv" / "csv").rglob("hparams.yaml")).read_text())
    assert hparams["unlearn"]["batch_size"] == 8


def test_a_copied_cell_still_reports_its_final_scores_to_its_loggers(tmp_path, cache_dir):
    first = run_cell(tmp_path / "first", cache_dir, "logger=none", "seed=7")
    second = run_cell(tmp_path / "second", cache_dir, "logger=csv", "seed=7")  # the logger is not in the hash
    assert second == first  # copied, not run again
    rows = next((tmp_path / "second" / "csv").rglob("metrics.csv")).read_text().splitlines()
    final = [dict(zip(rows[0].split(","), r.split(","))) for r in rows[1:]]
    assert float(next(r["final/unlearn"] for r in final if r["final/unlearn"])) == pytest.approx(first["unlearn"])


def test_joblib_runs_cells_in_parallel_and_fine_tunes_each_model_once(tmp_path):
    sweep = tmp_path / "parallel"
    cmd = sweep_cmd(
        sweep,
        "multirun_sweeps=table2_attack_smoke",
        "method=gd",
        "data.forget_split=forget10",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "~hydra.callbacks.sweep_start",  # the cells build the models (SLURM's way), not the sweep's start
    )
    proc = subprocess.run(
        cmd, env={**env(tmp_path / "fresh_cache"), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    logs = [p.read_text() for p in sweep.rglob("run.log")]
    assert len(logs) == 2 and len(finished(sweep)) == 2
    # Both cells needed the full and retain models; the cache lock let one cell build each.
    assert sum(log.count("Fine-tuning the full model") for log in logs) == 1
    assert sum(log.count("Reusing the fine-tuned full model") for log in logs) == 1
    assert not [p.name for p in (tmp_path / "fresh_cache").rglob("*") if p.name.endswith((".lock", ".tmp"))]


def test_a_sweep_checks_every_cell_then_fine_tunes_its_models_before_the_first_cell(tmp_path):
    cache = tmp_path / "cache"
    bad = sweep_cmd(tmp_path / "bad", "multirun_sweeps=table2_attack_smoke", "unlearn.epochs=0")
    proc = subprocess.run(bad, env=env(cache), capture_output=True, text=True, timeout=600)
    # one line naming the key, before any fine-tune or cell
    assert proc.returncode == 1 and "unlearn.epochs" in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert not (cache / "models").exists() and not finished(tmp_path / "bad")

    sweep = tmp_path / "good"
    cmd = sweep_cmd(sweep, "multirun_sweeps=table2_attack_smoke", "method=gd", "seed=0")
    proc = subprocess.run(cmd, env=env(cache), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # forget05 and forget10 share the full model: 3 models, built before the first cell
    assert "Fine-tuning the sweep's 3 base models first" in proc.stdout + proc.stderr
    logs = [p.read_text() for p in sweep.rglob("run.log")]
    assert len(logs) == len(finished(sweep)) == 4
    assert all("Fine-tuning" not in log and log.count("Reusing the fine-tuned") == 2 for log in logs)


@pytest.mark.parametrize("launcher", ["slurm", "submitit_slurm"])
def test_the_slurm_launcher_configs_compose(launcher):
    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose(
            "config", overrides=[f"hydra/launcher={launcher}", "hydra.launcher.partition=gpu"], return_hydra_config=True
        )
    assert cfg.hydra.launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert cfg.hydra.launcher.partition == "gpu"
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1
