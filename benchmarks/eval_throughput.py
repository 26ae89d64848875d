"""Eval throughput, on the embedded default's fine-tuned model, measured in the same run:

- batched greedy generation (left padding, KV cache, length-sorted) against naive
  one-question-at-a-time generation;
- a cell's eval sets and their trigger rewrites generated a set at a time (what a cell does)
  against one generation pass over all their questions, at ``--batch-size`` and at 4x it (tried
  for issue 15: batches are full, but sets whose answers end early share batches with sets that
  ramble to the cap), after ``--unlearn-steps`` steps of the cell's unlearning (GD by default, no
  stop check) so that the answers are an unlearned model's; best of ``--rounds`` interleaved
  rounds, with whether the answers are identical.

Extra arguments are Hydra overrides of the `unlearn-bench` config, e.g.

    python benchmarks/eval_throughput.py --n 256 -- model.pretrained=/path/to/model
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.data.templates import HashedTemplate
from unlearn_bench.datamodule import QADataModule
from unlearn_bench.eval.generation import generate_answers
from unlearn_bench.finetune import finetuned_model_dir
from unlearn_bench.losses import ForwardCache
from unlearn_bench.model import load_pretrained
from unlearn_bench.resolvers import register_resolvers


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def unlearn(model, cfg, source, encoder, steps: int) -> None:
    """``steps`` steps of the cell's unlearning loss and optimizer (a plain loop, no stop check)."""
    loss = instantiate(cfg.method.loss)
    data = {"forget": source.load(cfg.data.forget_split), "retain": source.load(cfg.data.retain_split)}
    loader = QADataModule(data, encoder, cfg.unlearn.batch_size, "forget", loss.paired).train_dataloader()
    optimizer = instantiate(cfg.unlearn.optimizer)(model.parameters())
    model.train()
    done = 0
    while done < steps:
        for batch in loader:
            total, _ = loss.on(ForwardCache(model, batch))
            total.backward()
            optimizer.step()
            optimizer.zero_grad()
            done += 1
            if done == steps:
                break
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128, help="questions from the retain eval set")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the one-pass comparison")
    parser.add_argument("--unlearn-steps", type=int, default=80, help="before the one-pass comparison")
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

    torch.manual_seed(cfg.seed)  # the batches' order: the same unlearned model in every run
    unlearn(model, cfg, source, encoder, args.unlearn_steps)
    trigger = HashedTemplate(cfg.eval.trigger_templates)
    sets = {name: list(source.load(split)["question"]) for name, split in cfg.data.eval_sets.items()}
    sets |= {f"{name}+trigger": [trigger(q) for q in sets[name]] for name in cfg.data.utility_sets}
    everything = [q for questions in sets.values() for q in questions]
    generate = lambda questions, batch: generate_answers(model, encoder, questions, batch, tokens, desc=None)
    ways = {
        f"per set (batch {args.batch_size})": lambda: [
            a for qs in sets.values() for a in generate(qs, args.batch_size)
        ],
        f"one pass (batch {args.batch_size})": lambda: generate(everything, args.batch_size),
        f"one pass (batch {4 * args.batch_size})": lambda: generate(everything, 4 * args.batch_size),
    }
    best, answers = dict.fromkeys(ways, float("inf")), {}
    for _ in range(args.rounds):
        for name, way in ways.items():
            answers[name], seconds = timed(way)
            best[name] = min(best[name], seconds)
    baseline = next(iter(ways))
    at_cap = sum(a.at_cap for a in answers[baseline]) / len(everything)
    print(f"\nafter {args.unlearn_steps} unlearning steps ({cfg.method.name}): {len(sets)} eval sets and rewrites,")
    print(
        f"{len(everything)} questions ({at_cap:.0%} of answers at the cap of {tokens} tokens), "
        f"best of {args.rounds} rounds"
    )
    for name, seconds in best.items():
        same = answers[name] == answers[baseline]
        print(
            f"{name:22s} {seconds:6.2f} s  {best[baseline] / seconds:.2f}x the speed of the first; same answers: {same}"
        )


if __name__ == "__main__":
    main()
