"""Eval throughput: batched greedy generation (left padding, KV cache, length-sorted) against
naive one-question-at-a-time generation, on the embedded default's fine-tuned model, measured in
the same run. Extra arguments are Hydra overrides of the `unlearn-bench` config, e.g.

    python benchmarks/eval_throughput.py --n 256 -- model.pretrained=/path/to/model
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.eval.generation import generate_answers
from unlearn_bench.finetune import finetuned_model_dir
from unlearn_bench.model import load_pretrained
from unlearn_bench.resolvers import register_resolvers


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128, help="questions from the retain eval set")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after --)")
    args = parser.parse_args()

    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=["paths.output_dir=.", *args.overrides])
    source = instantiate(cfg.data.source)
    model, tokenizer = load_pretrained(finetuned_model_dir(cfg, source, "full"), cfg.model)
    encoder = QAEncoder(tokenizer, cfg.model.prompt_format, cfg.model.max_length)
    questions = list(source.load(cfg.data.eval_sets.retain)["question"][: args.n])
    tokens = cfg.eval.max_new_tokens

    with torch.inference_mode():
        generate_answers(model, encoder, questions[:4], args.batch_size, tokens, desc=None)  # warm-up
        batched, t_batched = timed(
            lambda: generate_answers(model, encoder, questions, args.batch_size, tokens, desc=None)
        )
        naive, t_naive = timed(
            lambda: [generate_answers(model, encoder, [q], 1, tokens, desc=None)[0] for q in questions]
        )
    same = sum(a == b for a, b in zip(batched, naive)) / len(questions)
    print(f"{len(questions)} questions, max_new_tokens={tokens}, torch threads={torch.get_num_threads()}")
    print(f"naive (one at a time): {len(questions) / t_naive:8.1f} samples/s ({t_naive:.1f} s)")
    print(f"batched (batch {args.batch_size}):    {len(questions) / t_batched:8.1f} samples/s ({t_batched:.1f} s)")
    print(f"speed-up: {t_naive / t_batched:.1f}x; identical answers: {same:.1%}")


if __name__ == "__main__":
    main()
