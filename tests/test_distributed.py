"""A cell under DDP on 2 CPU processes (gloo) gives the metrics of one process: each eval sample
is scored once and the results are gathered; each global batch holds the same samples."""

import json
import os

import pytest
import torch.distributed as dist

from conftest import run_cli
from unlearn_bench.eval.distributed import sharded

DDP = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.precision=32-true",
    "unlearn.batch_size=4",
]  # 2 ranks x 4 = the single process's batch of 8
SCORES = ("unlearn", "clean_utility", "trigger_utility", "model_utility", "forget_quality", "mia_min_k_auc")


def run_cell(out, cache_dir, *overrides) -> dict:
    proc = run_cli(out, "logger=none", *overrides, cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_ddp_on_two_processes_gives_the_metrics_of_one(tmp_path, cache_dir):
    # Without training (lr 0) the model is the same in both runs, so the gathered eval must be exact.
    frozen = "unlearn.optimizer.lr=0"
    single = run_cell(tmp_path / "single0", cache_dir, frozen)
    ddp = run_cell(tmp_path / "ddp0", cache_dir, frozen, *DDP)
    for key in SCORES:
        assert ddp[key] == pytest.approx(single[key], abs=1e-6), key
    for name, scores in single["per_set"].items():
        assert ddp["per_set"][name]["n"] == scores["n"]  # every sample once, none twice
        for key in ("rougeL_recall", "probability", "exact_memorization", "min_k_logprob"):
            assert ddp["per_set"][name][key] == pytest.approx(scores[key], abs=1e-5), (name, key)
    assert ddp["multiple_choice"] == single["multiple_choice"]

    # Training: the same samples per global batch, gradients averaged over the ranks; only the
    # per-rank normalisation of the token-mean loss differs, so the scores agree closely.
    single = run_cell(tmp_path / "single", cache_dir)
    ddp = run_cell(tmp_path / "ddp", cache_dir, *DDP)
    assert ddp["unlearn_steps"] == single["unlearn_steps"] > 0
    for name, scores in single["per_set"].items():
        assert ddp["per_set"][name]["probability"] == pytest.approx(scores["probability"], rel=0.02), name
        assert ddp["per_set"][name]["rougeL_recall"] == pytest.approx(scores["rougeL_recall"], abs=0.1), name
    assert ddp["model_utility"] == pytest.approx(single["model_utility"], rel=0.02)
    assert not list((tmp_path / "ddp").glob("*.tmp"))  # no scratch file of metrics.json left behind


def test_sharded_without_a_process_group_is_the_plain_call():
    assert not dist.is_initialized()
    assert sharded(lambda xs: [x * 2 for x in xs], [1, 2, 3]) == [2, 4, 6]


def _shard_worker(rank: int, size: int, port: int, out_dir: str) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    dist.init_process_group("gloo", rank=rank, world_size=size)
    seen = []
    result = sharded(lambda xs: seen.extend(xs) or [f"{x}@{rank}" for x in xs], list(range(5)))
    with open(f"{out_dir}/{rank}.json", "w") as f:
        json.dump({"seen": seen, "result": result}, f)
    dist.destroy_process_group()


def test_sharded_scores_each_item_once_and_gathers_in_order(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_shard_worker, args=(2, port, str(tmp_path)), nprocs=2)
    runs = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)]
    assert runs[0]["seen"] == [0, 1, 2] and runs[1]["seen"] == [3, 4]  # contiguous shares, no overlap
    expected = ["0@0", "1@0", "2@0", "3@1", "4@1"]
    assert runs[0]["result"] == runs[1]["result"] == expected  # every rank ends with the whole list, in order


@pytest.mark.parametrize("trainer, strategy", [("ddp", "DDPStrategy"), ("deepspeed", "deepspeed_stage_2")])
def test_the_multi_gpu_trainer_configs_compose(trainer, strategy):
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from unlearn_bench.resolvers import register_resolvers

    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"trainer={trainer}"])
    assert (cfg.trainer.accelerator, cfg.trainer.precision, cfg.trainer.devices) == ("gpu", "bf16-mixed", "auto")
    built = instantiate(cfg.trainer.strategy) if not isinstance(cfg.trainer.strategy, str) else cfg.trainer.strategy
    assert (type(built).__name__ if not isinstance(built, str) else built) == strategy


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer=deepspeed", "trainer.strategy=fsdp"],
        ["trainer=deepspeed", "trainer.strategy=deepspeed_stage_3"],
        ["trainer=ddp", "trainer.strategy._target_=lightning.pytorch.strategies.FSDPStrategy"],
    ],
    ids=["fsdp", "zero3", "fsdp-target"],
)
def test_strategies_that_shard_the_weights_are_refused_before_training(overrides):
    from hydra import compose, initialize_config_module

    from unlearn_bench.config import ConfigError, validate
    from unlearn_bench.resolvers import register_resolvers

    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    with pytest.raises(ConfigError, match="evaluating a sharded model is not supported.*trainer=deepspeed"):
        validate(cfg)
