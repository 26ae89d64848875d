"""The caches survive faults: a killed build leaves debris that the next build removes, a live
builder's scratch is left alone, and a failed write names the path and keeps nothing partial."""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from filelock import FileLock
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from safetensors.torch import save_file

from conftest import TINY, TINY_SYNTH
from unlearn_bench import finetune
from unlearn_bench.cache import building, remove_stale_scratch, write_json
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.errors import FolderError
from unlearn_bench.eval.evaluate import load_eval_data, retain_reference
from unlearn_bench.finetune import cached_model_dir, cached_retain_reference, finetuned_model_dirs
from unlearn_bench.model import load_pretrained
from unlearn_bench.resolvers import register_resolvers


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_scratch_of_a_dead_process_is_removed_and_a_live_ones_is_kept(tmp_path, monkeypatch):
    entry = tmp_path / "model-abc"
    monkeypatch.setattr("unlearn_bench.cache._host", lambda: "thishost")
    dead = tmp_path / f"model-abc.thishost-{dead_pid()}.x1y2.tmp"
    live = tmp_path / f"model-abc.thishost-{os.getpid()}.z3.tmp"
    other_host = tmp_path / "model-abc.otherhost-1.q.tmp"
    other_entry = tmp_path / f"model-abcd.thishost-{dead_pid()}.tmp"  # another entry's, not a prefix match
    for folder in (dead, live, other_host):
        folder.mkdir()
        (folder / "weights").write_text("partial")
    other_entry.write_text("{")

    assert remove_stale_scratch(entry) == [dead]
    assert not dead.exists() and live.is_dir() and other_host.is_dir() and other_entry.exists()


def test_a_build_cleans_a_dead_builders_scratch_and_appears_complete(tmp_path, monkeypatch):
    monkeypatch.setattr("unlearn_bench.cache._host", lambda: "thishost")
    stale = tmp_path / f"entry.thishost-{dead_pid()}.abc.tmp"
    stale.mkdir()
    with building(tmp_path / "entry") as tmp:
        (tmp / "a.txt").write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]
    assert (tmp_path / "entry" / "a.txt").read_text() == "done"


@pytest.fixture
def small_file_limit():
    """Writes past 64 KiB fail with an OS error, as on a full disk (EFBIG instead of ENOSPC)."""
    old_limit, old_handler = resource.getrlimit(resource.RLIMIT_FSIZE), signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_a_failed_save_names_the_folder_and_keeps_nothing(tmp_path, small_file_limit):
    folder = tmp_path / "models" / "tiny-full-123"
    with pytest.raises(FolderError, match=rf"could not write {folder} \(.*File too large.*\); nothing partial"):
        with building(folder) as tmp:
            save_file({"w": torch.zeros(100_000)}, tmp / "model.safetensors")  # safetensors' own error names no path
    assert list((tmp_path / "models").iterdir()) == []


def test_a_failed_json_write_names_the_file_and_keeps_nothing(tmp_path, small_file_limit):
    with pytest.raises(FolderError, match=rf"could not write {tmp_path / 'metrics.json'}"):
        write_json(tmp_path / "metrics.json", {"x": "y" * 100_000})
    assert list(tmp_path.iterdir()) == []


KILL_DURING_SAVE = textwrap.dedent("""
    import os, signal, sys
    from transformers import PreTrainedModel

    save = PreTrainedModel.save_pretrained

    def save_then_die(self, folder, *args, **kwargs):
        save(self, folder, *args, **kwargs)  # the weights are in the scratch folder, not yet renamed into place
        os.kill(os.getpid(), signal.SIGKILL)

    PreTrainedModel.save_pretrained = save_then_die
    sys.argv = ["unlearn-bench", *sys.argv[1:]]
    from unlearn_bench.run import main
    main()
""")


def test_a_fine_tune_killed_mid_save_is_cleaned_up_by_the_next_run(tmp_path):
    cache = tmp_path / "cache"
    # One thread: both models build in this process (not side by side), so the kill hits them all.
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    args = [*TINY, *TINY_SYNTH, "logger=none", f"hydra.run.dir={tmp_path / 'run'}"]
    killed = subprocess.run(
        [sys.executable, "-c", KILL_DURING_SAVE, *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    debris = sorted(p.name for p in (cache / "models").iterdir())
    assert len(debris) == 2 and debris[0].endswith(".lock") and debris[1].endswith(".tmp"), debris
    assert not (tmp_path / "run" / "metrics.json").exists()

    rerun = subprocess.run(
        [sys.executable, "-m", "unlearn_bench.run", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    models = sorted(p.name for p in (cache / "models").iterdir())
    assert [m.rsplit("-", 1)[0] for m in models] == ["tiny_llama-full", "tiny_llama-retain"], models
    assert not [p for p in cache.rglob("*") if p.name.endswith((".tmp", ".lock"))]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["unlearn"] >= 0


def finetune_config(cache):
    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, *TINY_SYNTH, f"paths.cache_dir={cache}"])
    return cfg, instantiate(cfg.data.source)


@pytest.fixture
def threads():
    """Sets torch's thread count for the test, restoring it after."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_the_models_built_side_by_side_are_the_models_built_one_after_the_other(tmp_path, caplog, threads):
    threads(2)
    with caplog.at_level(logging.INFO, "unlearn_bench.finetune"):
        side_by_side = finetuned_model_dirs(*finetune_config(tmp_path / "a"))
    assert "side by side" in caplog.text
    assert torch.get_num_threads() == 2  # given back after the build
    threads(1)
    one_by_one = finetuned_model_dirs(*finetune_config(tmp_path / "b"))
    for a, b in zip(side_by_side, one_by_one, strict=True):
        assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_a_cell_builds_the_retain_model_while_another_builds_the_full_one(tmp_path, threads):
    threads(1)
    cfg, source = finetune_config(tmp_path)
    full, retain = (cached_model_dir(cfg, source, role) for role in ("full", "retain"))
    full.parent.mkdir(parents=True)
    other_cell = FileLock(f"{full}.lock")
    other_cell.acquire()  # another cell is building the full model
    with ThreadPoolExecutor(1) as pool:
        built = pool.submit(finetuned_model_dirs, cfg, source)
        deadline = time.monotonic() + 120
        while not retain.is_dir() and time.monotonic() < deadline and not built.done():
            time.sleep(0.2)
        assert retain.is_dir() and not full.exists() and not built.done()
        other_cell.release()  # it died without building: this cell waits no longer, and builds it
        assert built.result(timeout=300) == (full, retain)


def test_the_retain_models_reference_is_computed_once_per_model_and_eval_settings(tmp_path, monkeypatch):
    """Forget quality and the MIA compare with the retain model; its side of the comparison is the
    same for every cell, so it is cached, equal to a fresh computation, and the retain model is not
    loaded again. Other eval settings get their own entry."""
    cfg, source = finetune_config(tmp_path)
    _, retain = finetuned_model_dirs(cfg, source)
    model, tokenizer = load_pretrained(retain, cfg.model)
    encoder = QAEncoder(tokenizer, cfg.model.prompt_format, cfg.model.max_length)
    data = load_eval_data(cfg.data, source)
    first = cached_retain_reference(cfg, source, retain, encoder, data, "cpu")
    eval_kwargs = {key: cfg.eval[key] for key in ("batch_size", "max_samples", "min_k")}
    forget = data.eval_sets[cfg.data.forget_set]
    assert first == retain_reference(model, encoder, forget, False, data.holdout, **eval_kwargs)
    assert first["truth_ratios"] and 0 <= first["mia_min_k_auc"] <= 1

    def no_loading(*args):
        raise AssertionError("the retain model was loaded again")

    monkeypatch.setattr(finetune, "load_pretrained", no_loading)
    assert cached_retain_reference(cfg, source, retain, encoder, data, "cpu") == first
    cfg.eval.min_k = 0.2
    with pytest.raises(AssertionError, match="loaded again"):
        cached_retain_reference(cfg, source, retain, encoder, data, "cpu")


def test_a_last_round_of_fewer_builds_than_workers_gets_every_core(monkeypatch):
    pools, built = [], []

    def pool(workers, threads):  # runs each build at once, in this process
        pools.append((workers, threads))
        return ThreadPoolExecutor(1)

    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.setattr(finetune, "_build_processes", pool)
    monkeypatch.setattr(finetune, "_portable", lambda cfg: cfg)
    monkeypatch.setattr(finetune, "_build_model", lambda spec, role: built.append((spec, role)))
    builds = [(f"cfg{i}", "full") for i in range(5)]
    finetune.build_models(builds, 2)
    assert built == builds and pools == [(2, 2), (1, 4)]  # 2 rounds of 2 on 2 threads each, then 1 on 4
    pools.clear()
    finetune.build_models(builds[:4], 2)
    assert pools == [(2, 2)]
