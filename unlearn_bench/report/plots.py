"""The report's figures as PNG files: trigger against clean utility per setting, the scores
against SU's η, and the unlearning curves (the paper's Figure 1)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402  after choosing the backend
import pandas as pd  # noqa: E402  after choosing the backend

from unlearn_bench.report.table import Table  # noqa: E402  after choosing the backend

CURVE_SCORES = ("unlearn", "clean_utility", "trigger_utility")
MARKERS = ("o", "s", "^", "D", "v", "P")


def row_label(keys: list[str], values: tuple[str, ...]) -> str:
    return " ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, values)) or "all"


def plot_utility(table: Table, png: Path) -> Path:
    """One point per row: clean utility (x) against trigger utility (y), with 95% interval bars.
    Points under the diagonal lose utility only when the prompt carries the trigger."""
    fig, ax = plt.subplots(figsize=(6, 5))
    blocks = list(dict.fromkeys(row.key[:-1] for row in table.rows))  # a colour per block (e.g. method x split)
    last = list(dict.fromkeys(row.key[-1:] for row in table.rows))  # a marker per last key (e.g. attack)
    colours = plt.get_cmap("tab20" if len(blocks) > 10 else "tab10")
    for row in table.rows:
        ax.errorbar(
            row.mean("Clean avg"),
            row.mean("Trigger avg"),
            xerr=row.ci95("Clean avg"),
            yerr=row.ci95("Trigger avg"),
            fmt=MARKERS[last.index(row.key[-1:]) % len(MARKERS)],
            capsize=3,
            color=colours(blocks.index(row.key[:-1]) % colours.N),
            label=row_label(table.row_keys, row.key),
        )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(
        xlabel="clean utility",
        ylabel="trigger utility",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
        title="trigger vs clean utility (mean ± 95% interval)",
    )
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, png)


def plot_against(table: Table, key: str, png: Path) -> Path:
    """Unlearn, clean and trigger utility against a numeric swept key (SU's η), one line per
    setting of the other keys, with 95% interval bars."""
    i = table.row_keys.index(key)
    others = [k for k in table.row_keys if k != key]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), sharex=True)
    groups: dict[tuple, list] = {}
    for row in table.rows:
        groups.setdefault(row.key[:i] + row.key[i + 1 :], []).append(row)
    for group, rows in groups.items():
        rows = sorted(rows, key=lambda r: float(r.key[i]))
        x = [float(r.key[i]) for r in rows]
        for ax, col in zip(axes, ("Unlearn", "Clean avg", "Trigger avg")):
            ax.errorbar(
                x,
                [r.mean(col) for r in rows],
                yerr=[r.ci95(col) for r in rows],
                marker="o",
                capsize=3,
                label=row_label(others, group),
            )
            ax.set(xlabel=key, title=col)
    axes[0].legend(fontsize=7)
    return _save(fig, png)


def plot_curves(curves: Mapping[str, list[Path] | Path], png: Path) -> Path:
    """Unlearn, clean and trigger utility against the unlearning step from curve.csv files, one
    line per label, averaged over its files (seeds) at the steps they share."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), sharex=True)
    for label, files in curves.items():
        files = [files] if isinstance(files, (str, Path)) else files
        frames = [pd.read_csv(f) for f in files]
        steps = set.intersection(*(set(f["step"]) for f in frames))
        mean = pd.concat([f[f["step"].isin(steps)] for f in frames]).groupby("step").mean()
        for ax, score in zip(axes, CURVE_SCORES):
            ax.plot(mean.index, mean[score], marker=".", label=label or None)
            ax.set(xlabel="unlearning step", title=score.replace("_", " "), ylim=(0, 1.02))
    if any(curves):
        axes[0].legend(fontsize=7)
    return _save(fig, png)


def _save(fig, png: Path) -> Path:
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return Path(png)
