"""The `unlearn-bench` entry point, end to end on tiny overrides."""

import hashlib
import json
import logging
import os
import re
import subprocess
import sys

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_module

from conftest import CONF, REAL_TOFU, TINY, TINY_SYNTH, run_cell_here, run_cli
from unlearn_bench.attacks import StealthyAttack
from unlearn_bench.config import ConfigError, validate
from unlearn_bench.resolvers import register_resolvers

PROGRESS_BAR = re.compile(r"\d+%\||it/s|s/it|━")  # tqdm's and Lightning's rich bars


@pytest.fixture(scope="module")
def gd_cell(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("gd")
    proc = run_cli(out, "method=gd", "eval.curve_every_n_steps=1", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_cell_writes_metrics_json_with_the_documented_schema(gd_cell):
    out, proc = gd_cell
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {
        "unlearn",
        "clean_utility",
        "trigger_utility",
        "model_utility",
        "forget_quality",
        "mia_min_k_auc",
        "mia_min_k_auc_retain_model",
        "privleak",
        "multiple_choice",
        "attack",
        "defense",
        "recovery",
        "per_set",
        "base_model",
        "config",
        "unlearn_steps",
        "wall_seconds",
        "config_hash",
        "eval_device",
        "reached_stop_at_unlearn",
        "unlearn_end",
        "stop_checks",
        "seconds",
        "provenance",
    }
    assert metrics["recovery"] is None  # no recovery attack by default
    # the default trainer's device (accelerator auto: this machine's CPU, a GPU where there is one)
    assert metrics["eval_device"] == str(L.Trainer(logger=False).strategy.root_device)
    assert 0 <= metrics["forget_quality"] <= 1 and 0 <= metrics["model_utility"] <= 1
    assert 0 <= metrics["mia_min_k_auc"] <= 1 and 0 <= metrics["mia_min_k_auc_retain_model"] <= 1
    assert set(metrics["per_set"]) == {"forget", "retain", "world_facts", "forget_probes"}
    memorization = {"probability", "exact_memorization", "extraction_strength", "min_k_logprob"}
    for name, scores in metrics["per_set"].items():
        assert 0 <= scores["rougeL_recall"] <= 1 and scores["n"] == 8
        assert memorization <= set(scores) and ("truth_ratio" in scores) == (name != "forget_probes")
    assert set(metrics["per_set"]["forget_probes"]["rougeL_recall_by_probe"]) <= {"fill_blank", "qa", "adversarial"}
    for name in ("forget", "retain"):  # the synthetic multiple-choice sets, plain and with the trigger templates
        assert {"accuracy", "trigger_accuracy", "n"} == set(metrics["multiple_choice"][name])
        assert 0 <= metrics["multiple_choice"][name]["accuracy"] <= 1
    assert metrics["unlearn"] == metrics["per_set"]["forget"]["rougeL_recall"]
    utility = [metrics["per_set"][s]["rougeL_recall"] for s in ("retain", "world_facts")]
    assert metrics["clean_utility"] == pytest.approx(sum(utility) / 2)
    trigger = [metrics["per_set"][s]["trigger_rougeL_recall"] for s in ("retain", "world_facts")]
    assert metrics["trigger_utility"] == pytest.approx(sum(trigger) / 2)
    assert "trigger_rougeL_recall" not in metrics["per_set"]["forget"]
    assert metrics["attack"] is None and metrics["defense"] is None
    assert metrics["config"] == {
        "model": "tiny_llama",
        "data": "tofu_synth",
        "method": "gd",
        "attack": "none",
        "defense": "none",
        "seed": 0,
        "finetune_seed": 0,
    }
    assert isinstance(metrics["reached_stop_at_unlearn"], bool)
    assert metrics["unlearn_end"] == ("target" if metrics["reached_stop_at_unlearn"] else "epochs")
    assert set(metrics["base_model"]) == {"forget", "retain", "world_facts"}
    assert set(metrics["base_model"]["forget"]) == {"plain", "templated"}
    assert metrics["wall_seconds"] > 0
    stages = {"inputs", "base_eval", "forget_set", "unlearn", "stop_check", "eval"}
    assert set(metrics["seconds"]) == stages and metrics["seconds"]["stop_check"] <= metrics["seconds"]["unlearn"]
    checks = metrics["stop_checks"]
    assert 0 <= checks["generated"] <= checks["checks"] <= metrics["unlearn_steps"]
    if metrics["reached_stop_at_unlearn"]:  # only a generated answer set can show the target reached
        assert checks["generated"] >= 1
    assert "clean utility" in proc.stdout and "unlearn" in proc.stdout
    assert list((out / "csv").rglob("metrics.csv")), "the CSV logger wrote no per-step metrics"


def test_the_console_holds_no_library_chatter(gd_cell):
    _, proc = gd_cell
    console = proc.stdout + proc.stderr
    for chatter in (
        "Tip:",
        "GPU available",
        "TPU available",
        "Seed set to",
        "LeafSpec",
        "Creating json from Arrow",
        "Generating train split",
        "Loading `train_dataloader`",
    ):
        assert chatter not in console, chatter
    assert "Traceback" not in console
    # one screen besides the progress bars: the fine-tunes, warnings, the results table, where it was written
    lines = [line for line in re.split(r"[\r\n]", console) if line.strip() and not PROGRESS_BAR.search(line)]
    assert len(lines) < 40, "\n".join(lines)


def test_metrics_json_records_what_produced_it(gd_cell):
    out, _ = gd_cell
    record = json.loads((out / "metrics.json").read_text())["provenance"]
    assert record["versions"]["torch"] == torch.__version__
    assert set(record["versions"]) >= {"torch", "transformers", "lightning", "datasets", "peft", "hydra-core"}
    assert record["git"] is None or set(record["git"]) == {"commit", "dirty"}
    # the cell ran with the CPU numerics this environment set (conftest imported the package first: portable)
    numerics = record["cpu_numerics"]
    assert numerics["threads"] >= 1
    assert (numerics["MKL_CBWR"], numerics["ATEN_CPU_CAPABILITY"]) == (
        os.environ.get("MKL_CBWR"),
        os.environ.get("ATEN_CPU_CAPABILITY"),
    )
    if os.environ.get("ATEN_CPU_CAPABILITY") == "avx2" and record["device"].startswith("cpu (x86"):
        assert numerics["cpu_capability"] == "AVX2"


def test_curve_records_the_scores_every_n_steps(gd_cell):
    out, _ = gd_cell
    metrics = json.loads((out / "metrics.json").read_text())
    lines = (out / "curve.csv").read_text().splitlines()
    assert lines[0] == "step,unlearn,clean_utility,trigger_utility"
    rows = [[float(v) for v in line.split(",")] for line in lines[1:]]
    assert [int(r[0]) for r in rows] == list(range(metrics["unlearn_steps"] + 1))  # before the first step, then each
    assert all(0 <= v <= 1 for r in rows for v in r[1:])
    logged = next((out / "csv").rglob("metrics.csv")).read_text().splitlines()[0]
    assert {"curve/unlearn", "curve/clean_utility", "curve/trigger_utility"} <= set(logged.split(","))


def test_eval_entry_point_scores_a_saved_model_without_training(gd_cell, tmp_path, cache_dir):
    """The retain model scored against itself: forget quality 1 and no privacy leak, by definition."""
    retain = next(
        p
        for p in (cache_dir / "models").iterdir()
        if p.name.startswith("tiny_llama-retain-") and p.is_dir() and not p.name.endswith(".tmp")
    )
    cmd = [
        sys.executable,
        "-m",
        "unlearn_bench.eval_model",
        *TINY,
        *TINY_SYNTH,
        f"model_dir={retain}",
        f"hydra.run.dir={tmp_path}",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "UNLEARN_BENCH_CACHE": str(cache_dir)}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Fine-tuning" not in proc.stderr + proc.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    cell = json.loads((gd_cell[0] / "metrics.json").read_text())
    assert set(cell) - set(metrics) == {
        "attack",
        "defense",
        "recovery",
        "base_model",
        "unlearn_steps",
        "config_hash",
        "reached_stop_at_unlearn",
        "unlearn_end",
        "stop_checks",
        "seconds",
    }
    assert metrics["retain_model_dir"] == str(retain)
    assert metrics["forget_quality"] == pytest.approx(1.0)
    assert metrics["privleak"] == pytest.approx(0.0)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "unlearn_bench.eval_model",
            "model_dir=/no/such/model",
            f"hydra.run.dir={tmp_path / 'bad'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "Folder error: model_dir='/no/such/model' does not exist" in bad.stderr


def test_second_cell_reuses_the_cached_models(gd_cell, tmp_path, cache_dir, caplog):
    models = sorted(p.name for p in (cache_dir / "models").iterdir())
    assert len([m for m in models if m.startswith("tiny_llama-") and not m.endswith((".tmp", ".lock"))]) == 2
    with caplog.at_level(logging.INFO):
        metrics = run_cell_here(tmp_path, "method=ga", "seed=1", cache_dir=cache_dir)
    assert "Reusing the fine-tuned full model" in caplog.text and "Fine-tuning" not in caplog.text
    assert sorted(p.name for p in (cache_dir / "models").iterdir()) == models
    assert metrics["config"]["method"] == "ga"
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


@pytest.mark.parametrize("target, steps", [("null", 6), ("1.0", 2)])
def test_unlearning_stops_once_the_forget_score_reaches_the_target(tmp_path, cache_dir, target, steps):
    # 1 forget author (12 QA) in batches of 8: 2 steps an epoch, 6 in 3 epochs; a target of 1.0
    # is met at the first check (step 2).
    metrics = run_cell_here(tmp_path, "unlearn.epochs=3", f"unlearn.stop_at_unlearn={target}", cache_dir=cache_dir)
    assert metrics["unlearn_steps"] == steps


def test_a_run_that_stops_forgetting_stops_after_the_patience(tmp_path, cache_dir):
    # At a learning rate of 0 nothing is forgotten and a target of 0 is out of reach: checks every 2
    # steps (one epoch) see no progress, so a patience of 1 epoch ends the run at the second check,
    # not at the 6-step cap.
    overrides = [
        "unlearn.epochs=3",
        "unlearn.optimizer.lr=0.0",
        "unlearn.stop_patience_epochs=1",
        "unlearn.stop_at_unlearn=0.0",
        "unlearn.stop_check_max_gap_steps=2",
    ]
    metrics = run_cell_here(tmp_path, *overrides, cache_dir=cache_dir)
    assert (metrics["unlearn_end"], metrics["reached_stop_at_unlearn"], metrics["unlearn_steps"]) == (
        "stalled",
        False,
        4,
    )


def test_sa_cell_records_what_the_attack_changed(tmp_path, cache_dir):
    metrics = run_cell_here(
        tmp_path, "attack=sa", "+eval.extra_trigger_templates.unseen=['Hey {q}']", cache_dir=cache_dir
    )
    assert metrics["config"]["attack"] == "sa"
    assert metrics["attack"]["n_attacked"] == 4  # round(0.33 * 12 forget questions)
    assert 0 < metrics["attack"]["token_insertion_rate"] < 0.2
    assert set(metrics["extra_trigger_utility"]) == {"unseen"}  # an unattacked template set, scored apart
    assert set(metrics["per_set"]["retain"]["extra_trigger_rougeL_recall"]) == {"unseen"}


@pytest.mark.parametrize(
    "method, term",
    [
        ("npo", "train/forget"),
        ("idk", "train/idk"),
        ("kl", "train/retain"),
        ("simnpo", "train/forget"),
        ("dpo", "train/forget"),
        ("rmu method.layer=1", "train/forget"),
    ],
)
def test_other_methods_run_a_cell(tmp_path, cache_dir, method, term):
    method, *knobs = method.split()
    metrics = run_cell_here(
        tmp_path, f"method={method}", *knobs, "attack=sa", "trainer.log_every_n_steps=1", cache_dir=cache_dir
    )
    assert metrics["config"]["method"] == method
    assert term in next((tmp_path / "csv").rglob("metrics.csv")).read_text().splitlines()[0]


def test_su_cell_trains_on_scope_samples(tmp_path, cache_dir):
    metrics = run_cell_here(
        tmp_path,
        "attack=sa",
        "defense=su",
        "defense.eta=2",
        "unlearn.stop_at_unlearn=null",
        "trainer.log_every_n_steps=1",
        cache_dir=cache_dir,
    )
    assert metrics["config"]["defense"] == "su"
    logged = (next((tmp_path / "csv").rglob("metrics.csv"))).read_text().splitlines()[0]
    assert "train/scope" in logged


def test_rmu_on_a_layer_the_model_lacks_fails_before_any_fine_tune(tmp_path, capsys):
    with pytest.raises(SystemExit, match="1"):  # TINY has 1 decoder layer
        run_cell_here(tmp_path / "run", "method=rmu", "method.layer=3", cache_dir=tmp_path / "cache")
    assert (
        capsys.readouterr().err == "Config error: method.layer=3 is past the model's last decoder layer: use 1 to 1\n"
    )
    assert not (tmp_path / "cache" / "models").exists()


def test_anomaly_filter_drops_the_highest_loss_forget_samples(tmp_path, cache_dir):
    metrics = run_cell_here(tmp_path, "attack=sa", "defense=anomaly_filter", cache_dir=cache_dir)
    defense, attacked = metrics["defense"], metrics["attack"]["attacked"]
    assert defense["n_dropped"] == 4 and len(set(defense["dropped"])) == 4  # round(0.33 * 12 forget questions)
    assert attacked == StealthyAttack(p=0.33, seed=0).chosen(12)  # the attack's own choice, recorded
    assert set(defense["dropped"]) <= set(range(12))
    assert defense["n_attacked_dropped"] == len(set(attacked) & set(defense["dropped"]))


def test_eval_metrics_picks_the_passes_and_the_rest_is_null(tmp_path, cache_dir, capsys):
    metrics = run_cell_here(tmp_path, "eval.metrics=[rouge]", cache_dir=cache_dir)
    assert 0 <= metrics["unlearn"] <= 1 and 0 <= metrics["clean_utility"] <= 1
    skipped = ("model_utility", "forget_quality", "mia_min_k_auc", "mia_min_k_auc_retain_model", "privleak")
    assert all(metrics[key] is None for key in skipped) and metrics["multiple_choice"] is None
    assert not any("probability" in scores for scores in metrics["per_set"].values())
    table = capsys.readouterr().out
    assert "clean utility" in table and "TOFU" not in table and "multiple choice" not in table


def test_continued_ft_fine_tunes_on_retain_after_unlearning(tmp_path, cache_dir):
    metrics = run_cell_here(tmp_path, "defense=continued_ft", "defense.after_unlearning.steps=3", cache_dir=cache_dir)
    assert metrics["defense"] == {"retain_finetune_steps": 3} and metrics["config"]["defense"] == "continued_ft"


def _cfg(*overrides):
    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("data", sorted(p.stem for p in (CONF / "data").glob("*.yaml")))
def test_smoke_composes_with_every_data_config_or_refuses_in_one_line(data):
    try:
        validate(_cfg("experiment=smoke", f"data={data}"))
    except ConfigError as e:
        assert str(e).count("\n") == 0 and "remove it with ~data.source.num_authors" in str(e)


def test_smoke_with_real_tofu_refuses_the_synthetic_knob_in_one_line():
    with pytest.raises(
        ConfigError,
        match=r"data\.source\.num_authors is not an argument of "
        r"unlearn_bench\.data\.source\.TofuSource.*~data\.source\.num_authors",
    ):
        validate(_cfg("experiment=smoke", "data=tofu"))
    validate(_cfg("experiment=smoke", "data=tofu", "~data.source.num_authors"))  # the fix it names works
    validate(_cfg("experiment=smoke"))  # the embedded data takes it


def test_a_bad_input_as_a_process_prints_one_line_and_builds_nothing(tmp_path):
    """tests/test_bad_inputs.py runs the table in-process; this is the console script as users run it."""
    proc = run_cli(tmp_path, "seed=xyz", cache_dir=tmp_path / "empty_cache")
    expected = "Config error: seed='xyz' must be an integer in [0, 2**32) (numpy's seeds), e.g. seed=0\n"
    assert proc.returncode == 1 and proc.stderr == expected
    assert not (tmp_path / "empty_cache" / "models").exists()


def test_config_hash_does_not_depend_on_where_the_cache_lives(monkeypatch):
    from unlearn_bench.resume import config_hash

    monkeypatch.setenv("UNLEARN_BENCH_CACHE", "/one/cache")
    first = config_hash(_cfg())
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", "/another/cache")
    assert config_hash(_cfg()) == first
    assert config_hash(_cfg("seed=1")) != first  # what decides the result still does


@pytest.mark.parametrize("section, key", [("unlearn", "stop_patience_epochs"), ("eval", "generation_batch_size")])
def test_an_option_added_later_keeps_earlier_cells_resumable_while_off(section, key):
    """Cells run before an option existed resume (same hash) while it is null."""
    from omegaconf import open_dict

    from unlearn_bench.resume import config_hash

    before = _cfg()
    with open_dict(before):
        del before[section][key]
    assert config_hash(_cfg()) == config_hash(before)
    assert config_hash(_cfg(f"{section}.{key}=10")) != config_hash(before)


def test_forget_split_drives_the_retain_split():
    cfg = _cfg("data.forget_split=forget05")
    assert cfg.data.retain_split == "retain95"
    assert list(cfg.data.finetune_splits.retain)[0] == "retain95"


@pytest.mark.slow
@pytest.mark.skipif(not REAL_TOFU.is_dir(), reason="real TOFU files not present (../shared/data/tofu)")
def test_real_tofu_folder_runs_a_cell(tmp_path, cache_dir, capsys, caplog):
    data = [
        "data=tofu",
        f"data.source.path={REAL_TOFU}",
        "data.forget_split=forget01",
        "finetune.batch_size=64",
        "model.max_length=48",
        "model.tokenizer_vocab_size=512",
    ]
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit, match="1"):  # the local copy has no holdout
        run_cell_here(tmp_path / "no_holdout", cache_dir=cache_dir, data=data)
    assert "data.holdout_split=null" in capsys.readouterr().err
    assert "Fine-tuning" not in caplog.text, "a missing eval split must fail before any training"
    metrics = run_cell_here(tmp_path, cache_dir=cache_dir, data=[*data, "data.holdout_split=null"])
    assert set(metrics["per_set"]) == {"forget", "retain", "real_authors", "world_facts"}
    assert metrics["config"]["data"] == "tofu"
    assert metrics["mia_min_k_auc"] is None and 0 <= metrics["forget_quality"] <= 1
    assert 0 <= metrics["per_set"]["forget"]["extraction_strength"] <= 1


def test_fine_tuning_is_reproducible(tmp_path):
    """Two fresh caches, same config: byte-identical fine-tuned weights, built by a fresh process
    and by this one after whatever tests ran in it before (no state carries over)."""
    digests = []
    for name in ("a", "b"):
        if name == "a":
            proc = run_cli(tmp_path / name, "unlearn.epochs=1", cache_dir=tmp_path / f"cache_{name}")
            assert proc.returncode == 0, proc.stderr[-3000:]
        else:
            run_cell_here(tmp_path / name, "unlearn.epochs=1", cache_dir=tmp_path / f"cache_{name}")
        files = sorted((tmp_path / f"cache_{name}" / "models").glob("*/model.safetensors"))
        assert len(files) == 2
        digests.append([hashlib.sha256(f.read_bytes()).hexdigest() for f in files])
    assert digests[0] == digests[1]


def test_every_generation_of_a_cell_uses_the_generation_batch_size(tmp_path, cache_dir, monkeypatch):
    """The base-model eval, the stop check, the curve, the eval and the recovery attacks all
    generate eval.generation_batch_size answers at a time; the teacher-forced passes keep batch_size."""
    import unlearn_bench.eval.generation as generation

    sizes, real = [], generation._generate
    monkeypatch.setattr(
        generation,
        "_generate",
        lambda model, encoder, questions, size, *rest: (
            sizes.append(size) or real(model, encoder, questions, size, *rest)
        ),
    )
    overrides = ["eval.generation_batch_size=3", "eval.curve_every_n_steps=1", "recovery=[prompt]"]
    metrics = run_cell_here(tmp_path, *overrides, "unlearn.stop_at_unlearn=0.99", cache_dir=cache_dir)
    assert metrics["stop_checks"]["generated"] >= 1 and len(sizes) > 10
    assert set(sizes) == {3}
