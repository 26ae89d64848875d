"""What one stop check costs at paper scale, against the training it supervises: a cell of
``experiment=tofu_<model>`` (TOFU's forget10, 200 new tokens, 256 answers at once, checks at
least 13 steps apart) with a stop target, on a random-weight model of a published shape handed
over as the fine-tuned checkpoints (offline, as in ``gpu_check.py``), read from metrics.json.

Random weights answer nothing right, so the first check (13 steps in, about an epoch of forget10
at the presets' batch of 32) finds the recall below the target and stops the run: the cell holds
one epoch of training and one generating check. Untrained weights never end an answer early, so
every answer runs to the cap: the check's time is an upper bound for a trained model, whose
answers end (TOFU's answers are tens of tokens). ``check/epoch`` is the share a check every epoch
would add to the paper's 10 epochs.

    python benchmarks/stop_check_scale.py --tofu ../shared/data/tofu    # one CUDA GPU, the 1B shape
    python benchmarks/stop_check_scale.py --cpu                         # tiny shape, synthetic data

Ends with one line per model: ``stop_check_scale model=... steps=... checks=... generated=...
train_s=... check_s=... check/step=... check/epoch=... share=...`` (``train_s``: the unlearning
stage without its checks, Lightning's setup included; ``share``: ``check_s / seconds.unlearn``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from gpu_check import CHECKS, CPU_SHAPE, LLAMA3_VOCAB, SHAPES, build_checkpoint, free
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from unlearn_bench.cell import run_cell
from unlearn_bench.preflight import check_cell
from unlearn_bench.resolvers import register_resolvers
from unlearn_bench.tokenizer import train_tokenizer


def summary(name: str, metrics: dict) -> str:
    """The summary line of a cell's metrics.json."""
    seconds, steps = metrics["seconds"], metrics["unlearn_steps"]
    check, unlearn = seconds["stop_check"], seconds["unlearn"]
    train = unlearn - check
    return (
        f"stop_check_scale model={name} steps={steps} checks={metrics['stop_checks']['checks']} "
        f"generated={metrics['stop_checks']['generated']} train_s={train:.1f} check_s={check:.1f} "
        f"check/step={check / (train / steps):.1f} check/epoch={check / train:.2f} share={check / unlearn:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="a tiny shape on the CPU: checks that the script runs")
    parser.add_argument("--models", nargs="+", default=["llama32_1b"], choices=list(SHAPES))
    parser.add_argument("--tofu", default=None, help="a folder of TOFU's files (default: the synthetic data)")
    parser.add_argument("--target", type=float, default=0.5, help="the stop target (random weights are far below)")
    parser.add_argument("--workdir", default=None, help="for the checkpoints and cells (default: a temporary folder)")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("stop_check_scale needs a CUDA GPU; --cpu runs a tiny shape on the CPU")
    device = torch.device("cpu" if args.cpu else "cuda")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="stop_check_scale."))
    data = [f"data.source.path={args.tofu}", "data.holdout_split=null"] if args.tofu else ["data=tofu_synth"]
    lines = []
    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        for name in args.models:
            lora = dict(CHECKS)[name]
            folder = workdir / name
            overrides = [
                f"experiment=tofu_{name}",
                *data,
                f"model.lora.enabled={lora}",
                f"model.pretrained={folder}",
                f"finetune.full_model={folder}",
                f"finetune.retain_model={folder}",
                f"unlearn.stop_at_unlearn={args.target}",
                "logger=none",
                "trainer.enable_progress_bar=false",
                f"paths.cache_dir={workdir / 'cache'}",
                f"paths.output_dir={workdir / 'cells' / name}",
                "skip_completed=false",
                *(["trainer=default", "eval.max_new_tokens=8"] if args.cpu else []),
            ]
            cfg = compose("config", overrides=overrides)
            source = instantiate(cfg.data.source)
            splits = [cfg.data.finetune_splits.full[0], *cfg.data.eval_sets.values()]
            tokenizer = train_tokenizer(
                [t for s in splits for row in source.load(s) for t in (row["question"], row["answer"])],
                vocab_size=2048,
            )
            shape, vocab = (CPU_SHAPE, len(tokenizer)) if args.cpu else (SHAPES[name], LLAMA3_VOCAB)
            build_checkpoint(name, shape, vocab, tokenizer, folder, device)
            metrics = run_cell(cfg, check_cell(cfg))
            print(f"{name}: metrics.json seconds {json.dumps(metrics['seconds'])}", flush=True)
            lines.append(summary(name, metrics))
            free()
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
