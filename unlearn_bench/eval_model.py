"""``unlearn-bench-eval model_dir=PATH``: every metric of a cell on a saved model, without
training. Checked first (:func:`~unlearn_bench.preflight.check_eval`), then scored by
:func:`~unlearn_bench.eval.saved_model.evaluate_saved`, imported only after the checks."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from unlearn_bench.console import logging_kept, one_line_errors, quiet_library_warnings
from unlearn_bench.resolvers import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="eval_model")
def main(cfg: DictConfig) -> None:
    quiet_library_warnings()
    from unlearn_bench.preflight import check_eval  # torch, transformers, datasets: not for --help

    with one_line_errors():
        check_eval(cfg)
        with logging_kept("lightning.pytorch", "lightning.fabric"):  # imported after the checks: fast errors
            from unlearn_bench.eval.saved_model import evaluate_saved

        evaluate_saved(cfg)


if __name__ == "__main__":
    main()
