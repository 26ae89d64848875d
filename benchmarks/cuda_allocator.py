"""Greedy generation over a cell's eval-like batches with PyTorch's CUDA caching allocator as it
comes and with ``PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True``, each in a fresh process.

The dynamic KV cache grows every decoding step, so every step asks the allocator for blocks of
new sizes; a batch of a shape it has not seen took 4x longer than the same batch again on an H100
(``generation_cache.py``: 17.6 s against 4.5 s for 256 answers x 200 tokens of the 1B shape).
Expandable segments map more memory into one segment instead of a new ``cudaMalloc`` per size.
Both variants generate the same tokens (the allocator moves no arithmetic); the script checks it.

    python benchmarks/cuda_allocator.py --rounds 2     # one CUDA GPU, the 1B shape: about 2.5 min a process
    python benchmarks/cuda_allocator.py --cpu          # a tiny shape on the CPU (the setting does nothing there)

Ends with ``cuda_allocator model=... default_s=... expandable_s=... default/expandable=... identical=...``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import subprocess
import sys

VARIANTS = {"default": None, "expandable": "expandable_segments:True"}


def child(args) -> None:
    """Times the eval-like batches in this process; prints one JSON line."""
    import torch
    from generation_cache import (
        CPU_EVAL_SETS,
        CPU_VOCAB,
        EVAL_SETS,
        LLAMA3_VOCAB,
        eval_batches,
        generate,
        prompts,
        random_model,
    )

    device = torch.device("cpu" if args.cpu else "cuda")
    vocab = CPU_VOCAB if args.cpu else LLAMA3_VOCAB
    model = random_model(args.model, args.cpu, device)
    generate(model, prompts(4, vocab, device, seed=1), 4, None)  # kernels, not the cache's sizes
    batches = eval_batches(CPU_EVAL_SETS if args.cpu else EVAL_SETS, 16 if args.cpu else 256, vocab, device)
    outputs, seconds = zip(*(generate(model, b, args.new_tokens or (8 if args.cpu else 200), None) for b in batches))
    digest = hashlib.sha256(b"".join(o.cpu().numpy().tobytes() for o in outputs)).hexdigest()
    print(json.dumps({"seconds": sum(seconds), "per_batch": [round(s, 2) for s in seconds], "digest": digest}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="a tiny shape on the CPU: checks that the script runs")
    parser.add_argument("--model", default="llama32_1b", choices=["llama32_1b", "llama31_8b"])
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per answer (200; CPU 8)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (a process each); the best counts")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    results = {name: [] for name in VARIANTS}
    for _, (name, setting) in itertools.product(range(args.rounds), VARIANTS.items()):
        env = {k: v for k, v in os.environ.items() if k != "PYTORCH_CUDA_ALLOC_CONF"}
        env |= {"PYTORCH_CUDA_ALLOC_CONF": setting} if setting else {}
        command = [sys.executable, __file__, "--child", "--model", args.model, *(["--cpu"] if args.cpu else [])]
        command += ["--new-tokens", str(args.new_tokens)] if args.new_tokens else []
        out = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True).stdout
        results[name].append(json.loads(out.strip().splitlines()[-1]))
        print(f"{name}: {results[name][-1]['seconds']:.1f} s, per batch {results[name][-1]['per_batch']}", flush=True)
    default, expandable = (min(results[name], key=lambda r: r["seconds"]) for name in VARIANTS)
    digests = {r["digest"] for rounds in results.values() for r in rounds}
    print(
        f"\ncuda_allocator model={'cpu' if args.cpu else args.model} default_s={default['seconds']:.1f} "
        f"expandable_s={expandable['seconds']:.1f} default/expandable={default['seconds'] / expandable['seconds']:.2f} "
        f"identical={len(digests) == 1}"
    )


if __name__ == "__main__":
    main()
