"""Peak memory of one unlearning step (forward and backward) at a 128k vocabulary: the project's
loss terms against the same terms computed the way they were before (every forward returning all
hidden states, NLL and KL on float32 log-probabilities of every position, prompt and padding
included), same model and batch, in one run.

On CPU each measurement runs in a fresh process and its peak is the growth of the peak resident
set over the step; on CUDA it is the growth of ``torch.cuda.max_memory_allocated``.

    python benchmarks/train_memory.py                      # tiny Llama, vocab 128,256, bf16, CPU
    python benchmarks/train_memory.py --device cuda --hidden 2048 --layers 4
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from unlearn_bench.data.qa import IGNORE_INDEX
from unlearn_bench.losses import KL, NLL, NPO, ComposedLoss, ForwardCache, NegativeNLL
from unlearn_bench.losses.method import SplitOutput

METHODS = {  # the paper's likelihood methods and the KL retain term, built as their configs build them
    "gd": lambda: {"forget": NegativeNLL("forget"), "retain": NLL("retain", weight=2.0)},
    "npo": lambda: {"forget": NPO("forget", beta=0.1), "retain": NLL("retain")},
    "kl": lambda: {"forget": NegativeNLL("forget"), "retain": KL("retain")},
}


class FullSequenceCache(ForwardCache):
    """The loss computation before this change: a forward per split returning every position's
    logits and all hidden states, and float32 log-probabilities over the whole vocabulary at every
    position."""

    def outputs(self, which, split):
        if (which, split) not in self._outputs:
            rows = self.batch[split]
            with torch.set_grad_enabled(which == "model" and torch.is_grad_enabled()):
                out = self.models[which](rows["input_ids"], rows["attention_mask"], output_hidden_states=True)
            self._outputs[which, split] = SplitOutput(out.logits, out.hidden_states, offset=0)
        return self._outputs[which, split]

    def _answer_nll(self, which, split):
        if (which, split) not in self._nll:
            logits = self.outputs(which, split).logits[:, :-1].float()
            labels = self.batch[split]["labels"][:, 1:]
            mask = labels != IGNORE_INDEX
            token = nn.functional.cross_entropy(logits.transpose(1, 2), labels.masked_fill(~mask, 0), reduction="none")
            self._nll[which, split] = ((token * mask).sum(1), mask.sum(1))
        return self._nll[which, split]


class FullSequenceKL(KL):
    """KL as it was: on full ``[batch, seq, vocab]`` float32 log-probabilities, masked afterwards."""

    def forward(self, cache):
        full = lambda which: torch.log_softmax(cache.outputs(which, self.split).logits[:, :-1].float(), dim=-1)
        log_p, log_ref = full("model"), full("reference")
        token_kl = (log_ref.exp() * (log_ref - log_p)).sum(-1)
        mask = cache.answer_mask(self.split)
        return ((token_kl * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


def batch(vocab: int, size: int, seed: int, device) -> dict:
    """A right-padded QA batch shaped like TOFU's: prompts of 20-60 tokens, answers of 30-120."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(size):
        prompt, answer = int(torch.randint(20, 61, (1,), generator=g)), int(torch.randint(30, 121, (1,), generator=g))
        ids = torch.randint(3, vocab, (prompt + answer,), generator=g)
        rows.append((ids, torch.cat([torch.full((prompt,), IGNORE_INDEX), ids[prompt:]])))
    width = max(len(ids) for ids, _ in rows)
    pad = lambda t, fill: torch.cat([t, torch.full((width - len(t),), fill)])
    return {
        "input_ids": torch.stack([pad(i, 0) for i, _ in rows]).to(device),
        "attention_mask": torch.stack([pad(torch.ones(len(i), dtype=torch.long), 0) for i, _ in rows]).to(device),
        "labels": torch.stack([pad(lab, IGNORE_INDEX) for _, lab in rows]).to(device),
    }


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(args) -> dict:
    """One step of ``args.method`` in the ``args.variant`` way; peak memory growth in bytes."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=2 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(device, getattr(torch, args.dtype)).train()
    terms = METHODS[args.method]()
    if args.variant == "before":
        terms = {k: FullSequenceKL(t.split, t.weight) if isinstance(t, KL) else t for k, t in terms.items()}
    loss = ComposedLoss(terms)
    reference = copy.deepcopy(model).eval().requires_grad_(False) if loss.needs_reference else None
    data = {"forget": batch(args.vocab, args.batch, 1, device), "retain": batch(args.vocab, args.batch, 2, device)}
    tokens = sum(int(b["attention_mask"].sum()) for b in data.values())

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    else:
        start = rss_bytes()
    if args.variant == "before":
        cache = FullSequenceCache(model, data, reference)
        total = sum(loss.terms[name].weight * term(cache) for name, term in loss.terms.items())
    else:
        total, _ = loss(model, data, reference)
    total.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - start
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start
    return {"peak_bytes": peak, "loss": float(total), "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--vocab", type=int, default=128_256, help="Llama 3's vocabulary size")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="per split (forget and retain)")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--repeats", type=int, default=2, help="fresh processes per measurement; the lowest peak counts"
    )
    parser.add_argument("--variant", choices=["before", "after"], help=argparse.SUPPRESS)  # one child measurement
    parser.add_argument("--method", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args)))
        return

    print(
        f"one unlearning step, vocab {args.vocab}, hidden {args.hidden}, {args.layers} layers, {args.dtype}, "
        f"batch {args.batch} forget + {args.batch} retain, {args.device}"
    )
    common = [f"--{k}={getattr(args, k)}" for k in ("vocab", "hidden", "layers", "batch", "dtype", "device")]
    for method in args.methods:
        result = {}
        for _ in range(args.repeats):
            for variant in ("before", "after"):  # interleaved
                out = subprocess.run(
                    [sys.executable, __file__, *common, f"--variant={variant}", f"--method={method}"],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                run = json.loads(out.stdout.strip().splitlines()[-1])
                if variant not in result or run["peak_bytes"] < result[variant]["peak_bytes"]:
                    result[variant] = run
        before, after = result["before"]["peak_bytes"], result["after"]["peak_bytes"]
        same = abs(result["before"]["loss"] - result["after"]["loss"]) <= 1e-3 * max(1.0, abs(result["before"]["loss"]))
        print(
            f"method={method} tokens={result['after']['tokens']} peak_before={before / 2**20:.0f}MiB "
            f"peak_after={after / 2**20:.0f}MiB after/before={after / before:.2f} same_loss={same}"
        )


if __name__ == "__main__":
    main()
