"""Does the embedded default fine-tune the same model everywhere? Builds the default full model
from scratch under each CPU numerics setting, each in a fresh process with an empty cache, and
prints the sha256 of its weights and the wall time against the first setting, in one run.

Settings: ``native`` (each library's fastest path for this CPU), ``portable`` (the project's
default, numerics.py: MKL and ATen pinned to AVX2) and ``portable`` on one thread. Equal hashes on
two machines mean the same base model there; compare the printed hash with another machine's.

    python benchmarks/cpu_numerics.py
    python benchmarks/cpu_numerics.py -- finetune.epochs=2      # Hydra overrides for every build
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

SETTINGS = {  # name: (environment, threads or None for torch's default)
    "native": ({"UNLEARN_BENCH_CPU_NUMERICS": "native"}, None),
    "portable": ({"UNLEARN_BENCH_CPU_NUMERICS": "portable"}, None),
    "portable_1thread": ({"UNLEARN_BENCH_CPU_NUMERICS": "portable"}, 1),
}


def build(overrides: list[str], threads: int | None) -> dict:
    """In this (fresh) process: fine-tune the default full model into an empty cache."""
    import torch
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from unlearn_bench.finetune import finetuned_model_dir
    from unlearn_bench.numerics import cpu_numerics
    from unlearn_bench.resolvers import register_resolvers

    if threads is not None:
        torch.set_num_threads(threads)
    register_resolvers()
    with tempfile.TemporaryDirectory() as cache, initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.cache_dir={cache}", "trainer.enable_progress_bar=false", *overrides])
        start = time.perf_counter()
        folder = finetuned_model_dir(cfg, instantiate(cfg.data.source), "full")
        seconds = time.perf_counter() - start
        digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    return {"sha256": digest, "seconds": seconds, **cpu_numerics()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every build (after --)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(build(args.overrides, SETTINGS[args.child][1])))
        return

    results = {}
    for name in args.settings:
        env = {**os.environ, **SETTINGS[name][0]}
        for var in ("MKL_CBWR", "ATEN_CPU_CAPABILITY"):
            env.pop(var, None)  # the setting decides them, not this shell
        out = subprocess.run(
            [sys.executable, __file__, "--child", name, "--", *args.overrides],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
        r = results[name]
        print(
            f"setting={name} sha256={r['sha256'][:16]} seconds={r['seconds']:.1f} "
            f"cpu_capability={r['cpu_capability']} threads={r['threads']}",
            flush=True,
        )
    first = args.settings[0]
    for name in args.settings[1:]:
        same = results[name]["sha256"] == results[first]["sha256"]
        print(
            f"{name}/{first}: time ratio {results[name]['seconds'] / results[first]['seconds']:.2f}, "
            f"{'same' if same else 'different'} weights"
        )


if __name__ == "__main__":
    sys.exit(main())
