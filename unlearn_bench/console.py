"""What the entry points print: the run's own messages, its results table and warnings that
concern the user, not library internals (issue 13: a default run's console fits on one screen)."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from unlearn_bench.errors import problem_lines
from unlearn_bench.eval.scores import declared

# Raised inside Lightning by its own use of torch internals; nothing a user can act on.
LIBRARY_WARNINGS = ((r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),)


def quiet_library_warnings() -> None:
    """Hide :data:`LIBRARY_WARNINGS`, and nothing else."""
    for message, category in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


@contextmanager
def logging_kept(*names: str) -> Iterator[None]:
    """Keep the levels and handlers of the loggers ``names`` through the block. Lightning sets its
    loggers to INFO when imported; the entry points import it after Hydra has configured logging
    (quiet, see conf/hydra/default.yaml; ``hydra.verbose`` for the detail), so they restore it."""
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for lg, (level, handlers, propagate) in zip(loggers, saved):
            lg.setLevel(level)
            lg.handlers, lg.propagate = handlers, propagate


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A bad input ends the entry point with exit status 1 and one line per problem naming it
    (``Config error: …``, ``Data error: …``, ``Folder error: …``), not a traceback;
    ``HYDRA_FULL_ERROR=1`` does not change this, as the line already names the culprit."""
    try:
        yield
    except Exception as e:
        lines = problem_lines(e)
        if lines is None:
            raise
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(1) from None


def format_table(metrics: dict) -> str:
    """A small plain-text table of the cell's scores: the declared summary scores it has
    (:func:`~unlearn_bench.eval.scores.declared`), then ROUGE-L per set and multiple choice."""
    rows = [(s.console_label(), metrics[s.key]) for s in declared(metrics) if metrics.get(s.key) is not None]
    for name, value in (metrics.get("extra_trigger_utility") or {}).items():
        rows.append((f"trigger utility, {name} templates", value))
    for name, s in metrics["per_set"].items():
        rows.append((f"  {name} ROUGE-L recall (n={s['n']})", s["rougeL_recall"]))
        if "trigger_rougeL_recall" in s:
            rows.append((f"  {name} with trigger templates", s["trigger_rougeL_recall"]))
        for probe, value in (s.get("rougeL_recall_by_probe") or {}).items():
            rows.append((f"    {probe} probes", value))
    for name, s in (metrics.get("multiple_choice") or {}).items():
        rows += [
            (f"  multiple choice {name} accuracy (n={s['n']})", s["accuracy"]),
            (f"  multiple choice {name} with trigger templates", s["trigger_accuracy"]),
        ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{label:<{width}}  {value:.3f}" for label, value in rows]
    header = " ".join(f"{k}={v}" for k, v in metrics["config"].items())
    return "\n".join([header, "-" * (width + 8), *lines])
