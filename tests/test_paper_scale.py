"""The paper-scale path on CPU: the per-model TOFU presets, published checkpoints instead of the
fine-tune stage, base-model scores that do not depend on which cell built the cache, the
generation cap, and the GPU check script in its CPU mode."""

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from conftest import CONF, TINY, TINY_SYNTH, run_cell_here, unigram_model
from unlearn_bench.config import validate
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.eval.evaluate import score_set
from unlearn_bench.eval.generation import generate_answers
from unlearn_bench.finetune import base_eval
from unlearn_bench.model import load_pretrained
from unlearn_bench.resolvers import register_resolvers
from unlearn_bench.tokenizer import train_tokenizer

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("tofu_*.yaml") if p.stem != "tofu_paper")
METHODS = sorted(p.stem for p in (CONF / "method").glob("*.yaml"))
ROOT = Path(__file__).resolve().parents[1]


def composed(*overrides):
    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_every_paper_model_has_a_preset():
    models = {p.stem for p in (CONF / "model").glob("*.yaml")} - {"tiny_llama"}
    assert {f"tofu_{m}" for m in models} == set(PRESETS)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("preset", PRESETS)
def test_paper_presets_use_the_published_tofu_schedules_for_every_method(preset, method):
    cfg = composed(f"experiment={preset}", f"method={method}")
    tiny = composed(f"method={method}")
    validate(cfg)
    assert cfg.model.name == preset.removeprefix("tofu_") and cfg.model.pretrained  # a hub id
    assert cfg.data.name == "tofu" and cfg.trainer.precision == "bf16-mixed"
    # open-unlearning's TOFU settings: lr 1e-5, weight decay 0.01, 5 fine-tune and 10 unlearning epochs,
    # one warm-up epoch, an effective batch of 32, answers up to 200 new tokens
    for stage, epochs in (("finetune", 5), ("unlearn", 10)):
        section = cfg[stage]
        assert (section.optimizer.lr, section.optimizer.weight_decay, section.epochs) == (1e-5, 0.01, epochs)
        assert section.scheduler == "linear" and section.warmup_ratio * epochs == pytest.approx(1.0)
        assert section.batch_size * cfg.trainer.accumulate_grad_batches == 32
        assert section.optimizer.lr != tiny[stage].optimizer.lr  # nothing inherited from the embedded model
    assert cfg.eval.max_new_tokens == 200 and cfg.unlearn.stop_at_unlearn is None
    # a target set later checks about once an epoch, not every 2 steps near it (a check ~ 20 steps)
    steps_per_epoch = math.ceil(400 / 32)  # forget10's 400 questions
    assert cfg.unlearn.stop_check_every_n_steps == steps_per_epoch <= cfg.unlearn.stop_check_max_gap_steps


@pytest.mark.parametrize("trainer", ["default", "gpu"])
def test_every_optimizer_config_trains_with_clipping_under_the_trainer_precision(trainer):
    """Lightning's AMP (`trainer=gpu`: bf16-mixed) refuses to clip gradients for a fused AdamW,
    which unscales them itself; this failed on the first GPU run. bf16 autocast runs on CPU too."""
    import torch
    from test_losses import FORGET, Bigram

    from unlearn_bench.losses import NLL, ComposedLoss
    from unlearn_bench.module import ComposedLossModule

    cfg = composed(f"trainer={trainer}", "trainer.accelerator=cpu", "defense=continued_ft")
    factories = [cfg.finetune.optimizer, cfg.unlearn.optimizer, cfg.defense.after_unlearning.optimizer]
    assert [f.fused for f in factories] == [trainer == "default"] * 3  # fused where AMP is off
    for factory in factories:
        module = ComposedLossModule(Bigram(), ComposedLoss({"nll": NLL("forget")}), instantiate(factory))
        trainer_ = instantiate(cfg.trainer, max_steps=2, logger=False, enable_progress_bar=False)
        batches = torch.utils.data.DataLoader([{"forget": FORGET}] * 2, batch_size=None)
        trainer_.fit(module, train_dataloaders=batches)
        assert trainer_.global_step == 2


def run_cell(out, cache, *overrides):
    return run_cell_here(out, "logger=none", *overrides, cache_dir=cache)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, cache_dir):
    """The tiny fine-tuned full and retain models, as folders to hand over like published ones."""
    run_cell(tmp_path_factory.mktemp("build"), cache_dir)
    models = cache_dir / "models"
    full = [p for p in models.glob("tiny_llama-full-*") if p.is_dir()]
    retain = [p for p in models.glob("tiny_llama-retain-*") if p.is_dir()]
    return full[0], retain[0]


@pytest.mark.slow
def test_given_checkpoints_replace_the_fine_tune_and_the_given_retain_model_is_the_reference(
    finetuned, tmp_path, caplog
):
    full, _ = finetuned
    fresh = tmp_path / "cache"
    # The full model handed over as the retain model too, and unlearning at lr 0: the scored model is the
    # reference itself, so forget quality is exactly 1 and the MIA AUCs agree (the cached retain model
    # would give neither).
    with caplog.at_level(logging.INFO):
        metrics = run_cell(
            tmp_path / "cell",
            fresh,
            f"finetune.full_model={full}",
            f"finetune.retain_model={full}",
            "unlearn.optimizer.lr=0.0",
        )
    assert "no fine-tuning" in caplog.text and "Fine-tuning the" not in caplog.text
    assert not (fresh / "models").exists() or not any((fresh / "models").iterdir())
    assert metrics["forget_quality"] == 1.0
    assert metrics["mia_min_k_auc"] == metrics["mia_min_k_auc_retain_model"] and metrics["privleak"] == 0


def test_a_missing_given_checkpoint_fails_before_training(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "unlearn_bench.run",
            *TINY,
            *TINY_SYNTH,
            "logger=none",
            f"hydra.run.dir={tmp_path}",
            f"finetune.full_model={tmp_path}/nothing",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "UNLEARN_BENCH_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode != 0 and "finetune.full_model" in proc.stderr and "Traceback" not in proc.stderr


def test_base_model_scores_do_not_depend_on_which_cell_built_the_cache(finetuned, tmp_path):
    full, _ = finetuned

    def scores(cache, max_samples):
        cfg = composed(*TINY, *TINY_SYNTH, f"paths.cache_dir={cache}", f"eval.max_samples={max_samples}")
        model, tokenizer = load_pretrained(full, cfg.model)
        encoder = QAEncoder(tokenizer, cfg.model.prompt_format, cfg.model.max_length)
        return base_eval(model, encoder, instantiate(cfg.data.source), cfg, full)

    quick = scores(tmp_path / "a", 2)  # a quick run builds the cache first ...
    later = scores(tmp_path / "a", 8)  # ... a later cell with other eval settings
    assert later == scores(tmp_path / "b", 8)  # the same as if it had built the cache itself
    assert quick != later
    assert len(list((tmp_path / "a" / "base_eval").glob("*.json"))) == 2


def test_generation_cap_fits_the_longest_answer_and_reports_answers_cut_at_it(caplog):
    tokenizer = train_tokenizer(["Who? alpha beta gamma delta epsilon zeta"] * 3, 300)
    encoder = QAEncoder(tokenizer, "Q: {question}\nA:")
    # never emits the end-of-sequence token: every answer runs to the cap
    model = unigram_model(len(tokenizer), tokenizer(" alpha", add_special_tokens=False).input_ids)
    data = Dataset.from_dict({"question": ["Who?", "Who?"], "answer": ["alpha beta gamma delta epsilon", "alpha"]})
    longest = len(encoder.answer_ids("alpha beta gamma delta epsilon"))  # with EOS
    with caplog.at_level(logging.WARNING):
        scores = score_set(model, encoder, data, batch_size=2, max_new_tokens=2, desc="eval forget")
    assert scores["max_new_tokens"] == longest > 2 and scores["at_cap"] == 1.0
    assert "100% of the greedy answers stopped at the cap" in caplog.text and "eval.max_new_tokens" in caplog.text
    assert score_set(model, encoder, data, batch_size=2, max_new_tokens=50, desc=None)["max_new_tokens"] == 50


def test_a_generation_batch_out_of_gpu_memory_is_halved_and_the_answers_are_the_same(caplog):
    tokenizer = train_tokenizer(["Who? alpha beta gamma delta epsilon zeta"] * 3, 300)
    encoder = QAEncoder(tokenizer, "Q: {question}\nA:")
    model = unigram_model(len(tokenizer), tokenizer(" alpha", add_special_tokens=False).input_ids)
    generate, rows = model.generate, []

    def at_most_two_rows(input_ids, **kwargs):  # a GPU that holds 2 answers at a time
        rows.append(len(input_ids))
        if len(input_ids) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return generate(input_ids=input_ids, **kwargs)

    questions = ["Who?", "Who? alpha", "Who? beta", "Who? gamma", "Who? delta"]
    expected = generate_answers(model, encoder, questions, batch_size=1, max_new_tokens=3, desc=None)
    model.generate = at_most_two_rows
    with caplog.at_level(logging.WARNING):
        answers = generate_answers(model, encoder, questions, batch_size=8, max_new_tokens=3, desc=None)
    assert answers == expected and rows == [5, 2, 2, 1]  # 5 at once, then 2 at a time to the end
    assert "going on with 2 (set eval.generation_batch_size=2" in caplog.text
    model.generate = lambda **kwargs: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(torch.cuda.OutOfMemoryError):  # one answer that does not fit: nothing to halve
        generate_answers(model, encoder, questions[:1], batch_size=1, max_new_tokens=3, desc=None)


@pytest.mark.slow
def test_gpu_check_runs_in_its_cpu_mode(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--cpu",
            "--rounds",
            "1",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("gpu_check ")]
    assert [line[0] for line in summary] == ["model=llama32_1b", "model=llama31_8b", "deepspeed=skipped"]
    for line in summary[:2]:
        fields = dict(f.split("=", 1) for f in line)
        assert fields["eval_device"] == "cpu" and float(fields["lightning/bare"]) > 0
        assert float(fields["gen_tokens_per_s"]) > 0


def cpu_mode_summary(name: str, *args: str) -> dict[str, str]:
    """Runs ``benchmarks/<name>.py --cpu``; the fields of its one ``<name> k=v ...`` summary line."""
    script = ROOT / "benchmarks" / f"{name}.py"
    proc = subprocess.run([sys.executable, str(script), "--cpu", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith(f"{name} ")]
    return dict(f.split("=", 1) for f in line)


@pytest.mark.slow
def test_generation_cache_benchmark_runs_in_its_cpu_mode():
    fields = cpu_mode_summary("generation_cache")
    assert fields["model"] == "cpu" and fields["answers"] == "16"
    assert float(fields["dynamic_tokens_per_s"]) > 0 and float(fields["static_tokens_per_s"]) > 0
    assert float(fields["eval_static_first/dynamic"]) > 0 and float(fields["eval_static/dynamic"]) > 0
    same, total = map(int, fields["identical"].split("/"))
    assert total == 16 and 0 <= same <= 16


@pytest.mark.slow
def test_stop_check_scale_benchmark_runs_in_its_cpu_mode(tmp_path):
    """The paper presets' cell with a stop target on untrained weights: the first check, at the
    presets' spacing of 13 steps, generates and stops the run; the line splits its time."""
    fields = cpu_mode_summary("stop_check_scale", "--workdir", str(tmp_path))
    assert fields["model"] == "llama32_1b"
    assert (fields["steps"], fields["checks"], fields["generated"]) == ("13", "1", "1")
    metrics = json.loads((tmp_path / "cells" / "llama32_1b" / "metrics.json").read_text())
    assert metrics["reached_stop_at_unlearn"] is True
    assert float(fields["check_s"]) == pytest.approx(metrics["seconds"]["stop_check"], abs=0.05)
    assert 0 < float(fields["share"]) < 1


@pytest.mark.slow
def test_cuda_allocator_benchmark_runs_in_its_cpu_mode():
    fields = cpu_mode_summary("cuda_allocator")
    assert fields["model"] == "cpu" and float(fields["default_s"]) > 0 and float(fields["expandable_s"]) > 0
    assert fields["identical"] == "True"  # the allocator setting moves no arithmetic
