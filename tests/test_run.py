"""The `unlearn-bench` entry point, end to end on tiny overrides."""

import hashlib
import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module

from conftest import REAL_TOFU, TINY, TINY_SYNTH
from unlearn_bench.config import ConfigError, validate
from unlearn_bench.resolvers import register_resolvers


def run_cli(tmp_path, *overrides, cache_dir, data=TINY_SYNTH):
    cmd = [sys.executable, "-m", "unlearn_bench.run", *TINY, *data, f"hydra.run.dir={tmp_path}", *overrides]
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(cache_dir), "WANDB_MODE": "offline"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def gd_cell(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("gd")
    proc = run_cli(out, "method=gd", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_cell_writes_metrics_json_with_the_documented_schema(gd_cell):
    out, proc = gd_cell
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"unlearn", "clean_utility", "trigger_utility", "model_utility", "forget_quality",
                            "attack", "defense", "per_set", "base_model", "config", "unlearn_steps", "wall_seconds"}
    assert 0 <= metrics["forget_quality"] <= 1 and 0 <= metrics["model_utility"] <= 1
    for name in ("forget", "retain", "world_facts"):
        assert {"probability", "truth_ratio"} <= set(metrics["per_set"][name])
    assert set(metrics["per_set"]) == {"forget", "retain", "world_facts"}
    for scores in metrics["per_set"].values():
        assert 0 <= scores["rougeL_recall"] <= 1 and scores["n"] == 8
    assert metrics["unlearn"] == metrics["per_set"]["forget"]["rougeL_recall"]
    utility = [metrics["per_set"][s]["rougeL_recall"] for s in ("retain", "world_facts")]
    assert metrics["clean_utility"] == pytest.approx(sum(utility) / 2)
    trigger = [metrics["per_set"][s]["trigger_rougeL_recall"] for s in ("retain", "world_facts")]
    assert metrics["trigger_utility"] == pytest.approx(sum(trigger) / 2)
    assert "trigger_rougeL_recall" not in metrics["per_set"]["forget"]
    assert metrics["attack"] is None and metrics["defense"] is None
    assert metrics["config"] == {"model": "tiny_llama", "data": "tofu_synth", "method": "gd", "attack": "none",
                                 "defense": "none", "seed": 0}
    assert set(metrics["base_model"]) == {"forget", "retain", "world_facts"}
    assert set(metrics["base_model"]["forget"]) == {"plain", "templated"}
    assert metrics["wall_seconds"] > 0
    assert "clean utility" in proc.stdout and "unlearn" in proc.stdout
    assert list((out / "csv").rglob("metrics.csv")), "the CSV logger wrote no per-step metrics"


def test_second_cell_reuses_the_cached_models(gd_cell, tmp_path, cache_dir):
    models = sorted(p.name for p in (cache_dir / "models").iterdir())
    assert len([m for m in models if not m.endswith(".tmp")]) == 2  # full and retain
    proc = run_cli(tmp_path, "method=ga", "seed=1", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Reusing the fine-tuned full model" in proc.stderr + proc.stdout
    assert "Fine-tuning" not in proc.stderr + proc.stdout
    assert sorted(p.name for p in (cache_dir / "models").iterdir()) == models
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["method"] == "ga"


@pytest.mark.parametrize("target, steps", [("null", 6), ("1.0", 2)])
def test_unlearning_stops_once_the_forget_score_reaches_the_target(tmp_path, cache_dir, target, steps):
    # 1 forget author (12 QA) in batches of 8: 2 steps an epoch, 6 in 3 epochs; a target of 1.0
    # is met at the first check (step 2).
    proc = run_cli(tmp_path, "unlearn.epochs=3", f"unlearn.stop_at_unlearn={target}", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["unlearn_steps"] == steps


def test_sa_cell_records_what_the_attack_changed(tmp_path, cache_dir):
    proc = run_cli(tmp_path, "attack=sa", "+eval.extra_trigger_templates.unseen=['Hey {q}']", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["attack"] == "sa"
    assert metrics["attack"]["n_attacked"] == 4  # round(0.33 * 12 forget questions)
    assert 0 < metrics["attack"]["token_insertion_rate"] < 0.2
    assert set(metrics["extra_trigger_utility"]) == {"unseen"}  # an unattacked template set, scored apart
    assert set(metrics["per_set"]["retain"]["extra_trigger_rougeL_recall"]) == {"unseen"}


@pytest.mark.parametrize(
    "overrides, message",
    [(["attack=sa", "attack.transform.p=1.5"], "attack.p=1.5 must be in [0, 1]"),
     (["defense=su", "defense.eta=-1"], "it must be >= 0"),
     (["defense=anomaly_filter", "defense.forget_filter.p=1"], "anomaly_filter's p is 1"),
     (["defense=continued_ft", "defense.retain_finetune.steps=0"], "defense.retain_finetune.steps"),
     (["method=simnpo", "method.beta=0"], "SimNPO's beta is 0"),
     (["method=rmu", "method.steering_coeff=-1"], "steering_coeff is -1")],
)
def test_out_of_range_knob_fails_before_training(tmp_path, cache_dir, overrides, message):
    proc = run_cli(tmp_path, *overrides, cache_dir=cache_dir)
    assert proc.returncode != 0
    assert "Config error:" in proc.stderr and message in proc.stderr
    assert "Fine-tuning" not in proc.stderr


@pytest.mark.parametrize(
    "method, term",
    [("npo", "train/forget"), ("idk", "train/idk"), ("kl", "train/retain"), ("simnpo", "train/forget"),
     ("dpo", "train/forget"), ("rmu method.layer=1", "train/forget")],
)
def test_other_methods_run_a_cell(tmp_path, cache_dir, method, term):
    method, *knobs = method.split()
    proc = run_cli(tmp_path, f"method={method}", *knobs, "attack=sa", "trainer.log_every_n_steps=1",
                   cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["method"] == method
    assert term in next((tmp_path / "csv").rglob("metrics.csv")).read_text().splitlines()[0]


def test_su_cell_trains_on_scope_samples(tmp_path, cache_dir):
    proc = run_cli(tmp_path, "attack=sa", "defense=su", "defense.eta=2", "unlearn.stop_at_unlearn=null",
                   "trainer.log_every_n_steps=1", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["defense"] == "su"
    logged = (next((tmp_path / "csv").rglob("metrics.csv"))).read_text().splitlines()[0]
    assert "train/scope" in logged


def test_rmu_on_a_layer_the_model_lacks_names_the_layer_count(tmp_path, cache_dir):
    proc = run_cli(tmp_path, "method=rmu", "method.layer=3", cache_dir=cache_dir)  # TINY has 1 layer
    assert proc.returncode != 0 and "RMU's layer is 3, but the model has 1 decoder layers" in proc.stderr


def test_anomaly_filter_drops_the_highest_loss_forget_samples(tmp_path, cache_dir):
    proc = run_cli(tmp_path, "attack=sa", "defense=anomaly_filter", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    defense = json.loads((tmp_path / "metrics.json").read_text())["defense"]
    assert defense["n_dropped"] == 4  # round(0.33 * 12 forget questions)
    assert 0 <= defense["n_attacked_dropped"] <= 4


def test_continued_ft_fine_tunes_on_retain_after_unlearning(tmp_path, cache_dir):
    proc = run_cli(tmp_path, "defense=continued_ft", "defense.retain_finetune.steps=3", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["defense"] == {"retain_finetune_steps": 3} and metrics["config"]["defense"] == "continued_ft"


@pytest.mark.parametrize("group, option", [("method", "rmu"), ("attack", "sa"), ("defense", "anomaly_filter")])
def test_unknown_option_fails_with_the_list_of_options(tmp_path, cache_dir, group, option):
    proc = run_cli(tmp_path, f"{group}=nope", cache_dir=cache_dir)
    assert proc.returncode != 0
    assert f"Could not find '{group}/nope'" in proc.stderr and option in proc.stderr


def test_bad_value_fails_before_any_training(tmp_path, cache_dir):
    proc = run_cli(tmp_path, "unlearn.epochs=0", cache_dir=cache_dir)
    assert proc.returncode != 0
    assert "Config error: unlearn.epochs and unlearn.batch_size must be >= 1" in proc.stderr
    assert not (tmp_path / "metrics.json").exists()


def _cfg(*overrides):
    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize(
    "override, message",
    [
        ("+finetune.bogus=1", "finetune.bogus: Key 'bogus' not in 'StageConfig'"),
        ("unlearn.scheduler=wavy", "unlearn.scheduler='wavy'; choose one of"),
        ("eval.max_samples=0", "eval.max_samples=0 must be null or an int >= 1"),
        ("data.utility_sets=[retain,nope]", "name ['nope']"),
        ("finetune.batch_size=many", "finetune.batch_size"),
        ("unlearn.stop_at_unlearn=1.5", "unlearn.stop_at_unlearn=1.5 must be null or in [0, 1]"),
        ("eval.trigger_templates=[oops]", "eval.trigger_templates needs templates with {q}"),
        ("+eval.extra_trigger_templates.b=[oops]", "eval.extra_trigger_templates.b needs templates with {q}"),
    ],
)
def test_bad_config_values_get_one_readable_message(override, message):
    with pytest.raises(ConfigError) as err:
        validate(_cfg(override))
    assert message in str(err.value)


def test_forget_split_drives_the_retain_split():
    cfg = _cfg("data.forget_split=forget05")
    assert cfg.data.retain_split == "retain95"
    assert list(cfg.data.finetune_splits.retain)[0] == "retain95"


@pytest.mark.slow
@pytest.mark.skipif(not REAL_TOFU.is_dir(), reason="real TOFU files not present (../shared/data/tofu)")
def test_real_tofu_folder_runs_a_cell(tmp_path, cache_dir):
    data = ["data=tofu", f"data.source.path={REAL_TOFU}", "data.forget_split=forget01", "finetune.batch_size=64",
            "model.max_length=48", "model.tokenizer_vocab_size=512"]
    proc = run_cli(tmp_path, cache_dir=cache_dir, data=data)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["per_set"]) == {"forget", "retain", "real_authors", "world_facts"}
    assert metrics["config"]["data"] == "tofu"


def test_fine_tuning_is_reproducible(tmp_path):
    """Two fresh caches, same config: byte-identical fine-tuned weights."""
    digests = []
    for name in ("a", "b"):
        proc = run_cli(tmp_path / name, "unlearn.epochs=1", cache_dir=tmp_path / f"cache_{name}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        files = sorted((tmp_path / f"cache_{name}" / "models").glob("*/model.safetensors"))
        assert len(files) == 2
        digests.append([hashlib.sha256(f.read_bytes()).hexdigest() for f in files])
    assert digests[0] == digests[1]
