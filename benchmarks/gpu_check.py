"""The paper-scale path on one CUDA GPU, offline: real-shape models with random weights.

For the Llama 3.2 1B shape (full unlearning) and the Llama 3.1 8B shape (LoRA), saved with a
locally trained tokenizer and given as published checkpoints (``finetune.full_model`` /
``finetune.retain_model``, so nothing is fine-tuned), it
1. runs a cell of each with GD and with NPO through ``run_cell`` (unlearning, then every eval)
   on the synthetic data, and reads the eval device from metrics.json;
2. times greedy generation of ``--new-tokens`` tokens (untrained random weights never stop early);
3. times the unlearning step (GD): the project's LightningModule under the trainer config
   against a bare PyTorch loop (same model, batches, optimizer, precision and clipping),
   interleaved rounds, best round each; and measures the training peak of GPU memory (GD and
   NPO) against the estimate README's table uses;
4. where DeepSpeed is installed, runs the 1B shape's NPO cell (full unlearning with a reference
   model) under ``trainer=deepspeed`` (ZeRO-2 in bf16).

    python benchmarks/gpu_check.py               # one CUDA GPU: the 1B checks took about 2.5 min on an H100,
                                                 # the 8B ones without cells 4 min, with them over 4
    python benchmarks/gpu_check.py --cpu         # tiny shapes on the CPU (the test suite runs this)
    python benchmarks/gpu_check.py --models llama31_8b --skip-cells   # the 8B step, memory and generation only

It ends with one line per model: ``gpu_check model=... eval_device=... lightning/bare=... gen_tokens_per_s=...
gen_all/64=... peak_gib=... estimate_gib=...`` (generation of 256 retain answers at once, and its
speed against 64 at a time, ``eval.batch_size``'s default), and ``gpu_check deepspeed=...`` (``ok``,
``skipped`` or the error).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import itertools
import json
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from transformers import AutoModelForCausalLM, LlamaConfig

from unlearn_bench.cell import run_cell
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.datamodule import QADataModule
from unlearn_bench.eval.generation import generate_answers
from unlearn_bench.lora import frozen_reference, with_lora
from unlearn_bench.model import load_pretrained
from unlearn_bench.module import ComposedLossModule
from unlearn_bench.preflight import check_cell
from unlearn_bench.resolvers import register_resolvers
from unlearn_bench.tokenizer import train_tokenizer

LLAMA3_VOCAB = 128_256
SHAPES = {  # the published configs' shapes (config.json of meta-llama/Llama-3.2-1B-Instruct and -3.1-8B-Instruct)
    "llama32_1b": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        tie_word_embeddings=True,
        rope_theta=500000.0,
    ),
    "llama31_8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        tie_word_embeddings=False,
        rope_theta=500000.0,
    ),
}
CPU_SHAPE = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=16,
    tie_word_embeddings=False,
)
CHECKS = [("llama32_1b", False), ("llama31_8b", True)]  # (model config, LoRA)


def memory_estimate(n_params: int, n_trained: int, reference: bool) -> int:
    """README's estimate before activations, in bytes: bf16 weights (2 bytes per parameter), bf16
    gradients and two AdamW states for each trained parameter (6 more), and a frozen bf16 copy for
    a reference-model method without LoRA (2 more per parameter)."""
    return 2 * n_params + 6 * n_trained + (2 * n_params if reference else 0)


def build_checkpoint(name: str, shape: dict, vocab: int, tokenizer, folder: Path, device: torch.device) -> int:
    """A random-init model of ``shape`` saved with ``tokenizer`` like a downloaded checkpoint; its size."""
    config = LlamaConfig(
        vocab_size=vocab,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **shape,
    )
    torch.manual_seed(0)
    with torch.device(device):  # 8B parameters are initialised in seconds on the GPU, minutes on the CPU
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    n_params = sum(p.numel() for p in model.parameters())
    del model
    free()
    return n_params


def gib(values: dict[str, int]) -> str:
    """``{"gd":1.5,"npo":2.0}``: bytes per method in GiB, without spaces (one field of the summary line)."""
    return json.dumps({k: round(v / 2**30, 1) for k, v in values.items()}, separators=(",", ":"))


def free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def tokens(batch: dict) -> int:
    return sum(int(split["attention_mask"].sum()) for split in batch.values())


class StepTimer(L.Callback):
    """Time and tokens at the end of every training step."""

    def __init__(self):
        self.stamps: list[tuple[float, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        sync(pl_module.device)
        self.stamps.append((time.perf_counter(), tokens(batch)))


def tokens_per_s(stamps: list[tuple[float, int]], warmup: int) -> float:
    """Throughput over the steps after the first ``warmup`` (compilation, allocator growth)."""
    timed = stamps[warmup:]
    return sum(n for _, n in timed[1:]) / (timed[-1][0] - timed[0][0])


def lightning_step(cfg, model, loss, batches, warmup: int, device: torch.device) -> tuple[float, int]:
    """The project's unlearning step: its LightningModule under the trainer config."""
    timer = StepTimer()
    module = ComposedLossModule(model, loss, instantiate(cfg.unlearn.optimizer), "constant")
    trainer = instantiate(
        cfg.trainer, max_steps=len(batches), logger=False, callbacks=[timer], enable_progress_bar=False
    )
    reset_peak()
    loader = torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
    trainer.fit(module, train_dataloaders=loader)
    peak = peak_bytes()
    model.to(device)  # fit's teardown moved it to the CPU
    torch.use_deterministic_algorithms(
        False
    )  # the Trainer's `deterministic` flag is global; the bare loop runs without
    return tokens_per_s(timer.stamps, warmup), peak


def bare_step(cfg, model, loss, batches, warmup: int, device: torch.device) -> float:
    """The same step in a plain loop: autocast as the trainer's precision, clipping, AdamW."""
    model.train()
    optimizer = instantiate(cfg.unlearn.optimizer)([p for p in model.parameters() if p.requires_grad])
    reference = frozen_reference(model) if loss.needs_reference else None
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    stamps = []
    for batch in batches:
        batch = {s: {k: v.to(device) for k, v in split.items()} for s, split in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            total, _ = loss(model, batch, reference)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.gradient_clip_val)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        stamps.append((time.perf_counter(), tokens(batch)))
    return tokens_per_s(stamps, warmup)


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_bytes() -> int:
    return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="tiny shapes on the CPU: checks that the script runs")
    parser.add_argument("--steps", type=int, default=None, help="unlearning steps per timed round (20; CPU 4)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per engine; the best counts")
    parser.add_argument("--new-tokens", type=int, default=None, help="generated tokens per answer (200; CPU 8)")
    parser.add_argument("--models", nargs="+", default=[m for m, _ in CHECKS], choices=[m for m, _ in CHECKS])
    parser.add_argument("--workdir", default=None, help="for the checkpoints and cells (default: a temporary folder)")
    parser.add_argument("--skip-cells", action="store_true", help="only steps 2-3 (generation, step, memory)")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("gpu_check needs a CUDA GPU; --cpu runs the same steps with tiny shapes on the CPU")
    device = torch.device("cpu" if args.cpu else "cuda")
    steps = args.steps or (4 if args.cpu else 20)
    new_tokens = args.new_tokens or (8 if args.cpu else 200)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gpu_check."))
    trainer = "default" if args.cpu else "gpu"
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}; work folder {workdir}")

    summary = []
    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        for name, lora in [(m, lora) for m, lora in CHECKS if m in args.models]:
            folder = workdir / name
            base = [
                f"model={name}",
                f"model.lora.enabled={lora}",
                f"trainer={trainer}",
                "logger=none",
                f"paths.cache_dir={workdir / 'cache'}",
                "trainer.enable_progress_bar=false",
            ]
            cfg = compose("config", overrides=base)
            source = instantiate(cfg.data.source)
            corpus = [
                t
                for s in ("full", "world_facts", "general")
                for row in source.load(s)
                for t in (row["question"], row["answer"])
            ]
            tokenizer = train_tokenizer(corpus, vocab_size=2048)
            start = time.time()
            n_params = build_checkpoint(
                name,
                CPU_SHAPE if args.cpu else SHAPES[name],
                len(tokenizer) if args.cpu else LLAMA3_VOCAB,
                tokenizer,
                folder,
                device,
            )
            print(
                f"\n== {name}: {n_params / 1e9:.2f}B parameters, LoRA {lora}; built and saved in "
                f"{time.time() - start:.0f} s"
            )
            given = [f"model.pretrained={folder}", f"finetune.full_model={folder}", f"finetune.retain_model={folder}"]

            # 1. Cells, end to end.
            devices = {"skipped"} if args.skip_cells else set()
            for method in () if args.skip_cells else ("gd", "npo"):
                overrides = [
                    *base,
                    *given,
                    f"method={method}",
                    "unlearn.epochs=1",
                    "unlearn.stop_at_unlearn=null",
                    "eval.max_samples=16",
                    "eval.batch_size=16",
                    f"eval.max_new_tokens={min(new_tokens, 64)}",
                    f"paths.output_dir={workdir / 'cells' / f'{name}-{method}'}",
                    "skip_completed=false",
                ]
                start = time.time()
                cell_cfg = compose("config", overrides=overrides)
                metrics = run_cell(cell_cfg, check_cell(cell_cfg))
                devices.add(metrics["eval_device"])
                print(
                    f"cell {name} {method}: {metrics['unlearn_steps']} unlearning steps, eval on "
                    f"{metrics['eval_device']}, {time.time() - start:.0f} s, Unlearn {metrics['unlearn']:.3f}"
                )
                free()

            # 2. Generation throughput, on the weights as built (the training below teaches them to stop early).
            model, tok = load_pretrained(folder, cfg.model)
            model = with_lora(model.to(device), cfg.model.lora, "unlearn")
            n_trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
            encoder = QAEncoder(tok, cfg.model.prompt_format, cfg.model.max_length)
            questions = list(source.load(cfg.data.retain_split)["question"][:256])
            generate_answers(model, encoder, questions[:4], 4, 4, desc=None)  # warm-up
            rates = {}
            for batch in (64, len(questions)):  # eval.batch_size's default, and the presets' generation batch
                sync(device)
                start = time.perf_counter()
                answers = generate_answers(model, encoder, questions, batch, new_tokens, desc=None)
                sync(device)
                elapsed, at_cap = time.perf_counter() - start, sum(a.at_cap for a in answers)
                generated = sum(
                    new_tokens if a.at_cap else len(tok(a.text, add_special_tokens=False).input_ids) + 1
                    for a in answers
                )  # an answer that stopped early: its tokens and the end-of-sequence
                rates[batch] = generated / elapsed
                print(
                    f"generation: {len(questions)} answers x {new_tokens} new tokens, {batch} at a time, "
                    f"{at_cap} ran to the cap, {rates[batch]:.0f} tokens/s ({elapsed:.1f} s)"
                )
            gen_rate, gen_ratio = rates[len(questions)], rates[len(questions)] / rates[64]
            free()

            # 3. The unlearning step: Lightning against a bare loop; training peak memory.
            data = {"forget": source.load(cfg.data.forget_split), "retain": source.load(cfg.data.retain_split)}
            loader = QADataModule(data, encoder, cfg.unlearn.batch_size, epoch_split="forget").train_dataloader()
            batches = list(itertools.islice(itertools.cycle(list(loader)), steps))
            warmup = min(2, steps - 2)
            lightning, bare, peaks = [], [], {}
            gd = instantiate(compose("config", overrides=[*base, "method=gd"]).method.loss)
            for _ in range(args.rounds):
                rate, peaks["gd"] = lightning_step(cfg, model, gd, batches, warmup, device)
                lightning.append(rate)
                bare.append(bare_step(cfg, model, gd, batches, warmup, device))
                free()
            npo = instantiate(compose("config", overrides=[*base, "method=npo"]).method.loss)
            _, peaks["npo"] = lightning_step(cfg, model, npo, batches[: warmup + 2], warmup, device)
            ratio = max(lightning) / max(bare)
            print(
                f"unlearning step (GD, {steps} steps x {args.rounds} rounds): lightning {max(lightning):.0f} "
                f"tokens/s, bare loop {max(bare):.0f} tokens/s, lightning/bare {ratio:.2f}"
            )
            estimates = {m: memory_estimate(n_params, n_trained, m == "npo" and not lora) for m in peaks}
            for m in peaks:
                print(
                    f"training peak {m}: {peaks[m] / 2**30:.1f} GiB measured, {estimates[m] / 2**30:.1f} GiB "
                    "estimated before activations"
                )

            summary.append(
                f"gpu_check model={name} lora={lora} eval_device={','.join(sorted(devices))} "
                f"lightning/bare={ratio:.2f} "
                f"gen_tokens_per_s={gen_rate:.0f} gen_all/64={gen_ratio:.2f} "
                f"peak_gib={gib(peaks)} estimate_gib={gib(estimates)}"
            )
            del model
            free()
        summary.append(deepspeed_cell(args, workdir, new_tokens))
    print("\n" + "\n".join(summary))


def deepspeed_cell(args, workdir: Path, new_tokens: int) -> str:
    """The 1B shape's NPO cell under ZeRO-2 on this GPU; its summary line."""
    if args.cpu or "llama32_1b" not in args.models:
        return "gpu_check deepspeed=skipped (needs a GPU and the llama32_1b check)"
    if importlib.util.find_spec("deepspeed") is None:
        return "gpu_check deepspeed=skipped (pip install deepspeed)"
    folder = workdir / "llama32_1b"
    overrides = [
        "model=llama32_1b",
        "trainer=deepspeed",
        "logger=none",
        "trainer.enable_progress_bar=false",
        f"model.pretrained={folder}",
        f"finetune.full_model={folder}",
        f"finetune.retain_model={folder}",
        "method=npo",
        "unlearn.epochs=1",
        "unlearn.stop_at_unlearn=null",
        "eval.max_samples=16",
        "eval.batch_size=16",
        f"eval.max_new_tokens={min(new_tokens, 64)}",
        f"paths.cache_dir={workdir / 'cache'}",
        f"paths.output_dir={workdir / 'cells' / 'llama32_1b-npo-deepspeed'}",
        "skip_completed=false",
    ]
    start = time.time()
    try:
        cfg = compose("config", overrides=overrides)
        reset_peak()
        metrics = run_cell(cfg, check_cell(cfg))
    except Exception as error:  # the check reports what broke, after the other checks' lines
        return f"gpu_check deepspeed=failed ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
    print(
        f"cell llama32_1b npo under trainer=deepspeed: {metrics['unlearn_steps']} unlearning steps, eval on "
        f"{metrics['eval_device']}, {time.time() - start:.0f} s, Unlearn {metrics['unlearn']:.3f}, "
        f"peak {peak_bytes() / 2**30:.1f} GiB"
    )
    return f"gpu_check deepspeed=ok eval_device={metrics['eval_device']} peak_gib={peak_bytes() / 2**30:.1f}"


if __name__ == "__main__":
    main()
