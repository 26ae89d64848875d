"""``unlearn-bench``: one experiment cell. Everything that can be checked is checked first
(:mod:`~unlearn_bench.preflight`), all problems listed at once; only then is the recipe
(:mod:`~unlearn_bench.cell`) imported, with Lightning, whose import alone takes seconds."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from unlearn_bench.console import logging_kept, one_line_errors, quiet_library_warnings
from unlearn_bench.resolvers import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run(cfg)


def run(cfg: DictConfig) -> dict:
    """The cell of a composed config, as ``unlearn-bench`` runs it (also in-process, as the tests
    do): its checks, then the cell; metrics.json's content."""
    quiet_library_warnings()
    from unlearn_bench.preflight import check_cell  # torch, transformers, datasets: not for --help

    with one_line_errors():
        components = check_cell(cfg)
    with logging_kept("lightning.pytorch", "lightning.fabric"):  # imported after the checks: bad inputs answer fast
        import torch

        from unlearn_bench.cell import run_cell

    try:
        with one_line_errors():
            return run_cell(cfg, components)
    except torch.cuda.OutOfMemoryError:
        raise SystemExit(
            f"Out of GPU memory with model={cfg.model.name}. Try model.lora.enabled=true, "
            "model.gradient_checkpointing=true, a smaller unlearn.batch_size with "
            "trainer.accumulate_grad_batches, or trainer=deepspeed (ZeRO-2) over several GPUs."
        ) from None


if __name__ == "__main__":
    main()
