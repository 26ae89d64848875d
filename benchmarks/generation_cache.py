"""Greedy generation with the dynamic KV cache (what ``generate_answers`` uses) against
transformers' static cache, which ``generate`` compiles (``torch.compile``, CUDA graphs) on a GPU:
same random-weight model of a published shape, same left-padded prompts, in one run.

Prints, per model shape, each cache's first call (the static one compiles), tokens/s of each
on its second call, their ratio, and how many answers are token for token the same (a compiled forward
need not round as the eager one does). Then a cell's eval as it would meet the static cache: TOFU's
eval sets (400, 400, 117 and 100 questions), each sorted by length and cut into batches, so the
batches differ in rows and width; every shape new to a static cache compiles again, so it is timed
twice, its first pass with the compilations (once per process) and its second without. Random
weights never stop early, so every answer runs to ``--new-tokens``.

    python benchmarks/generation_cache.py                   # one CUDA GPU: the 1B and 8B shapes, bf16
    python benchmarks/generation_cache.py --cpu             # a tiny shape on the CPU (no compilation there)

Ends with one line per shape: ``generation_cache model=... answers=... dynamic_tokens_per_s=...
static_tokens_per_s=... static/dynamic=... first_dynamic_s=... first_static_s=...
identical=... eval_static_first/dynamic=... eval_static/dynamic=...``. (README's first measurement
timed the dynamic cache on its first call, and had no eval-like part.)
"""

from __future__ import annotations

import argparse
import time

import torch
from gpu_check import CPU_SHAPE, LLAMA3_VOCAB, SHAPES, free, sync
from transformers import AutoModelForCausalLM, LlamaConfig

EVAL_SETS = [400, 400, 117, 100]  # TOFU's forget10 and retain_perturbed questions, world facts, real authors
CPU_EVAL_SETS = [24, 24, 7, 6]
CPU_VOCAB = 512


def random_model(name: str, cpu: bool, device: torch.device):
    """A random-weight Llama of the published shape ``name`` in bf16 (``cpu``: a tiny one in fp32), for inference."""
    vocab, shape = (CPU_VOCAB, CPU_SHAPE) if cpu else (LLAMA3_VOCAB, SHAPES[name])
    config = LlamaConfig(vocab_size=vocab, max_position_embeddings=4096, **shape)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32 if cpu else torch.bfloat16)
    return model.eval()


def prompts(n: int, vocab: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """``n`` random prompts of 20 to 60 tokens (TOFU's question lengths), left-padded with 0."""
    g = torch.Generator().manual_seed(seed)
    return padded(torch.randint(20, 61, (n,), generator=g).tolist(), vocab, device, g)


def padded(lengths: list[int], vocab: int, device: torch.device, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Random prompts of the given lengths, left-padded with 0 to the longest."""
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, width - length :] = torch.randint(1, vocab, (length,), generator=g)
        mask[row, width - length :] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def eval_batches(sizes: list[int], batch_size: int, vocab: int, device: torch.device) -> list[dict]:
    """The batches of a cell's eval over sets of ``sizes`` questions: each set sorted by length and
    cut into ``batch_size`` rows, so the batches differ in rows and width (a static cache's size)."""
    g = torch.Generator().manual_seed(2)
    batches = []
    for size in sizes:
        lengths = sorted(torch.randint(20, 61, (size,), generator=g).tolist())
        batches += [padded(lengths[i : i + batch_size], vocab, device, g) for i in range(0, size, batch_size)]
    return batches


def generate(model, batch: dict, new_tokens: int, cache: str | None) -> tuple[torch.Tensor, float]:
    """The generated tokens and the seconds they took."""
    sync(model.device)
    start = time.perf_counter()
    out = model.generate(
        **batch,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=0,
        cache_implementation=cache,
    )
    sync(model.device)
    return out[:, batch["input_ids"].shape[1] :], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="a tiny shape on the CPU: checks that the script runs")
    parser.add_argument("--models", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--answers", type=int, default=256, help="answers generated at once (256; CPU 16)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per answer (200; CPU 16)")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("generation_cache needs a CUDA GPU; --cpu runs a tiny shape on the CPU")
    device = torch.device("cpu" if args.cpu else "cuda")
    answers = 16 if args.cpu and args.answers == 256 else args.answers
    new_tokens = args.new_tokens or (16 if args.cpu else 200)
    summary = []
    for name in ["cpu"] if args.cpu else args.models:
        vocab = CPU_VOCAB if args.cpu else LLAMA3_VOCAB
        model = random_model(name, args.cpu, device)
        batch = prompts(answers, vocab, device)
        generate(model, prompts(4, vocab, device, seed=1), 4, None)  # warm-up (kernels, allocator)
        _, first_dynamic_s = generate(model, batch, new_tokens, None)  # grows the allocator's pool, as an eval has
        dynamic, dynamic_s = generate(model, batch, new_tokens, None)
        print(
            f"{name}: dynamic cache, {answers} answers x {new_tokens} tokens: first call {first_dynamic_s:.1f} s, "
            f"then {dynamic_s:.1f} s",
            flush=True,
        )
        _, first_s = generate(model, batch, new_tokens, "static")
        print(f"{name}: static cache, first call (compilation included): {first_s:.1f} s", flush=True)
        static, static_s = generate(model, batch, new_tokens, "static")
        identical = int((static == dynamic).all(dim=1).sum())
        rate = lambda seconds: answers * new_tokens / seconds
        print(
            f"{name}: static cache: {static_s:.1f} s; {rate(static_s):.0f} against {rate(dynamic_s):.0f} tokens/s; "
            f"{identical}/{answers} answers identical",
            flush=True,
        )
        # A cell's eval: every batch shape new to the static cache compiles once per process.
        sets = CPU_EVAL_SETS if args.cpu else EVAL_SETS
        batches = eval_batches(sets, answers, vocab, device)
        passes = {  # the dynamic cache's pool has grown above; the static one's second pass is compiled
            cache: [sum(generate(model, b, new_tokens, cache)[1] for b in batches) for _ in range(rounds)]
            for cache, rounds in ((None, 1), ("static", 2))
        }
        print(
            f"{name}: eval-like, {len(batches)} batches of sets of {sets} questions: dynamic "
            f"{passes[None][0]:.1f} s; static {passes['static'][0]:.1f} s with its compilations, "
            f"{passes['static'][1]:.1f} s after",
            flush=True,
        )
        summary.append(
            f"generation_cache model={name} answers={answers} dynamic_tokens_per_s={rate(dynamic_s):.0f} "
            f"static_tokens_per_s={rate(static_s):.0f} static/dynamic={dynamic_s / static_s:.2f} "
            f"first_dynamic_s={first_dynamic_s:.1f} first_static_s={first_s:.1f} identical={identical}/{answers} "
            f"eval_static_first/dynamic={passes[None][0] / passes['static'][0]:.2f} "
            f"eval_static/dynamic={passes[None][0] / passes['static'][1]:.2f}"
        )
        del model
        free()
    print("\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
