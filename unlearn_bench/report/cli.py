"""``unlearn-bench-report SWEEP_DIR``: a sweep's cells as the paper's tables (Markdown, CSV,
LaTeX), plots and one self-contained report.html, written beside the cells; ``--wandb`` also logs
them to a W&B run of the sweep's group. Cells that failed or never ran are listed, never silently
dropped."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unlearn_bench.extras import LOGGER_PACKAGES, require
from unlearn_bench.provenance import differing
from unlearn_bench.report.cells import Sweep, read_sweep
from unlearn_bench.report.html import to_html
from unlearn_bench.report.plots import plot_against, plot_curves, plot_utility, row_label
from unlearn_bench.report.table import (
    BASE_MODEL_KEY,
    Table,
    build_table,
    flat,
    to_csv,
    to_latex,
    to_markdown,
)


def not_reported(sweep: Sweep, root: Path) -> list[str]:
    """One line per cell that is not in the table: failed (a run directory without metrics.json)
    or missing (in the sweep's grid, never started)."""
    lines = [f"failed ({c.problem or 'no metrics.json'}): {c.path.relative_to(root)}" for c in sweep.failed]
    lines += ["missing (never started): " + " ".join(f"{k}={v}" for k, v in m.items()) for m in sweep.missing]
    return lines


def provenance_warnings(sweep: Sweep) -> list[str]:
    """One line per provenance field (metrics.json ``provenance``) that differs across the
    finished cells, with its values."""
    mixed = differing([c.metrics.get("provenance") for c in sweep.finished])
    return [f"{key}: {', '.join(values)}" for key, values in mixed.items()]


def write_plots(sweep: Sweep, table: Table, out: Path) -> list[Path]:
    """trigger vs clean utility always; the η curve when SU's η was swept; the unlearning curves
    when cells wrote curve.csv (averaged over the seeds of each row)."""
    plots = [plot_utility(table, out / "utility.png")]
    if "defense.eta" in table.row_keys:
        plots.append(plot_against(table, "defense.eta", out / "eta.png"))
    curves: dict[str, list[Path]] = {}
    for cell in sweep.finished:
        if (cell.path / "curve.csv").is_file():
            key = tuple(cell.overrides.get(k, "") for k in table.row_keys)
            label = row_label(table.row_keys, key) if key else ""  # a single curve needs no legend
            curves.setdefault(label, []).append(cell.path / "curve.csv")
    if curves:
        plots.append(plot_curves(curves, out / "curves.png"))
    return plots


def write_report(sweep_dir: str | Path, out: str | Path | None = None) -> tuple[Sweep, Table, list[Path]]:
    sweep_dir = Path(sweep_dir)
    sweep = read_sweep(sweep_dir)
    out = Path(out or sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = build_table(sweep)
    skipped = not_reported(sweep, sweep_dir)
    averaged = f", each replicate averaged over {', '.join(sweep.average_over)} first" if sweep.average_over else ""
    intro = (
        f"{len(sweep.finished)} finished cells; mean ± half-width of the 95% t-interval over the replicates "
        f"(unlearning seeds × base models, n per row){averaged}; best of each block in bold."
    )
    markdown = [f"# {sweep.name}", "", intro, "", to_markdown(table)]
    tables = {"All base models": table}
    if len(sweep.swept.get(BASE_MODEL_KEY, [])) > 1:
        tables["Per base model"] = build_table(sweep, per_base_model=True)
        markdown += [
            "## Per base model",
            "",
            f"The same rows for each base model ({BASE_MODEL_KEY}), over the unlearning seeds: where these "
            "disagree, the conclusion depends on the base model.",
            "",
            to_markdown(tables["Per base model"]),
        ]
    mixed = provenance_warnings(sweep)
    if mixed:
        markdown += [
            "## Warning: mixed provenance",
            "",
            "The cells were produced by different software or machines, which can change the base model "
            "and every number downstream:",
            "",
            *(f"- {line}" for line in mixed),
            "",
        ]
        for line in mixed:
            print(f"unlearn-bench-report: warning: mixed provenance: {line}", file=sys.stderr)
    if skipped:
        markdown += ["## Cells not in the table", "", *(f"- {line}" for line in skipped), ""]
    files = [out / "table.md", out / "table.csv", out / "table.tex"]
    for path, text in zip(files, ("\n".join(markdown), to_csv(table), to_latex(table))):
        path.write_text(text)
    plots = write_plots(sweep, table, out)
    notes = [f"mixed provenance: {line}" for line in mixed] + skipped
    page = out / "report.html"
    page.write_text(to_html(sweep.name, intro, tables, plots, notes))
    return sweep, table, [*files, page, *plots]


def log_to_wandb(sweep: Sweep, table: Table, files: list[Path], out: Path, mode: str) -> None:
    """The table as a ``wandb.Table`` and the plots as images, in a report run of the sweep's group."""
    from lightning.pytorch.loggers import WandbLogger

    logger = WandbLogger(
        project=sweep.project,
        group=sweep.name,
        name=f"{sweep.name}-report",
        job_type="report",
        save_dir=str(out),
        mode=mode,
    )
    columns, data = flat(table)
    logger.log_table("table", columns=columns, data=data)
    for png in (f for f in files if f.suffix == ".png"):
        logger.log_image(png.stem, [str(png)])
    logger.experiment.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("sweep_dir", type=Path, help="a Hydra multirun directory, e.g. multirun/table2_attack")
    parser.add_argument("--out", type=Path, help="where to write the report (default: the sweep directory)")
    parser.add_argument("--wandb", choices=["offline", "online"], help="also log the report to W&B")
    args = parser.parse_args(argv)
    try:
        if args.wandb:
            require(*LOGGER_PACKAGES["WandbLogger"], "--wandb")
        sweep, table, files = write_report(args.sweep_dir, args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"unlearn-bench-report: {e}", file=sys.stderr)
        return 1
    if args.wandb:
        log_to_wandb(sweep, table, files, args.out or args.sweep_dir, args.wandb)
    print(files[0].read_text())
    print("Wrote " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
