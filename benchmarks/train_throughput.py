"""Training-step throughput: the project's unlearning step against a bare PyTorch loop and against
``transformers.Trainer`` (the engine open-unlearning trains with), measured in the same run.

All three run GD (gradient ascent on forget + NLL on retain, weight 1) with the same model
(the same initial weights), the same data (the embedded synthetic TOFU's forget and retain
splits, encoded by the project's encoder; 8 + 8 rows per step), AdamW at the same learning rate
and gradient clipping at 1.0:

- ``bare``: a plain loop over pre-collated batches: ``model(...).logits``, shifted cross-entropy,
  ``loss.backward()``, clip, ``torch.optim.AdamW`` (its defaults), ``zero_grad``;
- ``project``: :class:`~unlearn_bench.module.ComposedLossModule` with ``method=gd``'s loss and the
  unlearning optimizer, under the Trainer config a cell uses (``conf/trainer/default.yaml``, the
  CSV logger, the progress bar), fed by :class:`~unlearn_bench.datamodule.QADataModule`;
- ``hf``: ``transformers.Trainer`` with a GradDiff ``compute_loss`` (``-NLL(forget) + NLL(retain)``
  through the model's own ``labels`` loss, as open-unlearning's GradDiff does) and its default
  optimizer (fused AdamW), over the same pre-collated batches.

Each engine's steps after ``--warmup`` are timed (set-up excluded) in ``--rounds`` interleaved
rounds, each from a fresh copy of the same weights; the best round counts. Two sizes: the
embedded tiny model (1 thread) and a ~10M-parameter Llama (2 threads). The last lines are one per
size: ``size=<name> project/bare=<ratio> project/hf=<ratio>``.

    python benchmarks/train_throughput.py [--steps 40] [--rounds 3] [--sizes tiny,10m]
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
import time
import warnings

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf

from unlearn_bench.data.qa import IGNORE_INDEX, QAEncoder
from unlearn_bench.datamodule import QADataModule
from unlearn_bench.finetune import _texts
from unlearn_bench.model import base_model
from unlearn_bench.resolvers import register_resolvers

SIZES = {
    # name: (torch threads, architecture overrides of conf/model/tiny_llama.yaml)
    "tiny": (1, {}),
    "10m": (
        2,
        dict(hidden_size=256, intermediate_size=688, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=8),
    ),
}
VOCAB_10M = 8192  # the 10M model's vocabulary (the tokenizer's 2048 ids are a subset)


class StepClock:
    """Wall-clock time from the start of step ``warmup`` to the end of the last step."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, None, None

    def step_start(self, step: int) -> None:
        if step == self.warmup:
            self.start = time.perf_counter()

    def step_end(self) -> None:
        self.end = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.end - self.start


def shifted_nll(model, batch) -> torch.Tensor:
    """Mean answer-token NLL over the batch: logits of every position, shifted cross-entropy."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=IGNORE_INDEX
    )


def run_bare(model, batches, lr: float, clock: StepClock) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for step, batch in enumerate(batches):
        clock.step_start(step)
        loss = -shifted_nll(model, batch["forget"]) + shifted_nll(model, batch["retain"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        clock.step_end()


def run_project(cfg, model, encoder, data, clock: StepClock, out: str) -> None:
    import lightning as L

    from unlearn_bench.module import ComposedLossModule

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            clock.step_start(trainer.global_step)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clock.step_end()

    loss = instantiate(cfg.method.loss)
    datamodule = QADataModule(data, encoder, cfg.unlearn.batch_size, epoch_split="forget", paired=loss.paired)
    logger = instantiate(cfg.logger, save_dir=out)
    trainer = instantiate(cfg.trainer, max_steps=clock.total, logger=logger, callbacks=[Clock()])
    # with the agreement the default cell's stop check reads
    module = ComposedLossModule(model, loss, instantiate(cfg.unlearn.optimizer), cfg.unlearn.scheduler, agreement=True)
    trainer.fit(module, datamodule)


def run_hf(model, batches, lr: float, clock: StepClock, out: str) -> None:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class GradDiff(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            forget = model(**inputs["forget"]).loss
            retain = model(**inputs["retain"]).loss
            return -forget + retain

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.step_start(state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            clock.step_end()

    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=1,  # one pre-collated batch per step
        max_steps=len(batches),
        learning_rate=lr,
        weight_decay=0.0,
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        report_to=[],
        save_strategy="no",
        logging_steps=5,
        disable_tqdm=False,
        use_cpu=not torch.cuda.is_available(),
        dataloader_pin_memory=False,
        remove_unused_columns=False,
    )
    trainer = GradDiff(model=model, args=args, train_dataset=batches, data_collator=lambda rows: rows[0])
    trainer.add_callback(Clock())
    trainer.train()


def size_setup(cfg, size: str, steps: int):
    """The model (fresh weights), encoder, splits and ``steps`` pre-collated batches for a size."""
    threads, arch = SIZES[size]
    torch.set_num_threads(threads)
    source = instantiate(cfg.data.source)
    data = {"forget": source.load(cfg.data.forget_split), "retain": source.load(cfg.data.retain_split)}
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.architecture = OmegaConf.merge(model_cfg.architecture, arch)
    corpus = _texts([source.load(s) for s in cfg.data.finetune_splits.full])
    torch.manual_seed(0)
    model, tokenizer = base_model(model_cfg, corpus, cfg.paths.cache_dir + "/tokenizers")
    if size == "10m":
        model.resize_token_embeddings(VOCAB_10M, mean_resizing=False)
    encoder = QAEncoder(tokenizer, cfg.model.prompt_format, cfg.model.max_length)
    torch.manual_seed(0)
    loader = QADataModule(data, encoder, cfg.unlearn.batch_size, epoch_split="forget").train_dataloader()
    batches = []
    while len(batches) < steps:
        batches.extend(loader)
    return threads, model, encoder, data, batches[:steps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="steps per engine and round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="tiny,10m")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import lightning  # noqa: F401  (sets its loggers to INFO when imported: quieted after)

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)

    register_resolvers()
    out = tempfile.mkdtemp(prefix="train_throughput-")
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.output_dir={out}", "trainer.enable_progress_bar=true"])
    lr = cfg.unlearn.optimizer.lr
    summary = []
    for size in args.sizes.split(","):
        threads, initial, encoder, data, batches = size_setup(cfg, size, args.steps)
        params = sum(p.numel() for p in initial.parameters())
        tokens = sum(int(b[s]["attention_mask"].sum()) for b in batches[args.warmup :] for s in b) / (
            args.steps - args.warmup
        )
        best = {}
        for _ in range(args.rounds):
            for engine in ("bare", "project", "hf"):
                model, clock = copy.deepcopy(initial), StepClock(args.warmup)
                clock.total = args.steps
                if engine == "bare":
                    run_bare(model, batches, lr, clock)
                elif engine == "project":
                    run_project(cfg, model, encoder, data, clock, out)
                else:
                    run_hf(model, batches, lr, clock, out)
                rate = tokens * (args.steps - args.warmup) / clock.seconds
                best[engine] = max(best.get(engine, 0.0), rate)
        print(f"\nsize={size}: {params / 1e6:.1f}M parameters, {threads} thread(s), {tokens:.0f} tokens/step")
        for engine, rate in best.items():
            print(f"  {engine:8s} {rate:10.0f} tokens/s  ({rate / best['bare']:.2f}x bare)")
        ratios = f"project/bare={best['project'] / best['bare']:.2f} project/hf={best['project'] / best['hf']:.2f}"
        summary.append(f"size={size} {ratios}")
    print()
    print("\n".join(summary))


if __name__ == "__main__":
    main()
