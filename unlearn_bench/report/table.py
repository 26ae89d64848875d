"""A sweep's cells as the paper lays out its tables: one row per setting (the swept keys except
the replicate keys and ``average_over``), the mean of each column with a 95% interval over the
replicates (unlearning seeds × base models), the best value of each block of rows (rows that
differ only in the last swept key) in bold."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy.stats import t as student_t

from unlearn_bench.eval.scores import declared
from unlearn_bench.report.cells import Sweep

# A result is sampled over the unlearning seed and over the base model (the fine-tune's seed: the
# same command builds a different base model with another seed, or on another machine).
BASE_MODEL_KEY = "finetune.seed"
REPLICATE_KEYS = ("seed", BASE_MODEL_KEY)


def ci95(values: list[float]) -> float:
    """Half-width of the 95% Student-t interval of the mean of ``values`` (replicates taken as
    exchangeable); 0 for a single value, which has no spread to show."""
    if len(values) < 2:
        return 0.0
    return float(student_t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)))


@dataclass(frozen=True)
class Column:
    name: str
    path: tuple[str, ...]  # where the value sits in metrics.json
    higher_is_better: bool


@dataclass
class Row:
    key: tuple[str, ...]  # the values of Table.row_keys
    values: dict[str, list[float]]  # column name -> one value per seed

    def mean(self, column: str) -> float | None:
        v = self.values.get(column)
        return statistics.mean(v) if v else None

    def std(self, column: str) -> float | None:
        v = self.values.get(column)
        return statistics.stdev(v) if v and len(v) > 1 else 0.0 if v else None

    def ci95(self, column: str) -> float | None:
        v = self.values.get(column)
        return ci95(v) if v else None

    @property
    def n(self) -> int:
        return max((len(v) for v in self.values.values()), default=0)


@dataclass
class Table:
    row_keys: list[str]
    columns: list[Column]
    rows: list[Row]

    def best(self) -> set[tuple[tuple[str, ...], str]]:
        """(row key, column) pairs holding the best mean of their block (rows differing only in the
        last row key), unless the whole block ties."""
        out = set()
        blocks: dict[tuple, list[Row]] = {}
        for row in self.rows:
            blocks.setdefault(row.key[:-1], []).append(row)
        for rows in blocks.values():
            for col in self.columns:
                means = [(round(r.mean(col.name), 3), r) for r in rows if r.mean(col.name) is not None]  # as shown
                if len(means) < 2:
                    continue
                top = (max if col.higher_is_better else min)(m for m, _ in means)
                if any(m != top for m, _ in means):  # a block tied throughout has no best
                    out |= {(r.key, col.name) for m, r in means if m == top}
        return out


def columns_for(cells: list[dict]) -> list[Column]:
    """The declared report columns (:func:`~unlearn_bench.eval.scores.declared`) the cells have: the
    paper's (Unlearn; clean and trigger utility per utility set and averaged), then TOFU's model
    utility and forget quality when they were computed, then extra metrics' and recovery attacks'
    scores; a column where any cell has a value (a recovered share is null where unlearning
    removed too little)."""
    metrics = cells[0]
    utility_sets = [s for s, scores in metrics["per_set"].items() if "trigger_rougeL_recall" in scores]
    cols = []
    for score in declared(metrics):
        if score.report_label is None or all(cell.get(score.key) is None for cell in cells):
            continue
        if score.per_set_key:
            cols += [
                Column(f"{score.per_set_label} {s}", ("per_set", s, score.per_set_key), score.higher_is_better)
                for s in utility_sets
            ]
        cols.append(Column(score.report_label, (score.key,), score.higher_is_better))
    return cols


def _get(metrics: dict, path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(metrics, dict) or metrics.get(key) is None:
            return None
        metrics = metrics[key]
    return float(metrics)


def build_table(sweep: Sweep, per_base_model: bool = False) -> Table:
    """Rows in the sweep's order; within a row, cells of one replicate (seed, base model) are first
    averaged over ``sweep.average_over`` (e.g. the methods), then mean and spread are taken over
    the replicates. ``per_base_model`` splits the rows by base model (``finetune.seed``)."""
    finished = sweep.finished
    if not finished:
        raise ValueError(f"sweep {sweep.name!r} has no finished cell (no metrics.json) to report")
    row_keys = [k for k in sweep.swept if k not in REPLICATE_KEYS and k not in sweep.average_over]
    if per_base_model:
        row_keys.append(BASE_MODEL_KEY)
    columns = columns_for([cell.metrics for cell in finished])
    per_seed: dict[tuple, dict[tuple, dict[str, list[float]]]] = {}
    for cell in finished:
        key = tuple(_setting(cell, k) for k in row_keys)
        replicate = tuple(_setting(cell, k) for k in REPLICATE_KEYS)
        for col in columns:
            value = _get(cell.metrics, col.path)
            if value is not None:
                per_seed.setdefault(key, {}).setdefault(replicate, {}).setdefault(col.name, []).append(value)
    rows = []
    for key, seeds in per_seed.items():
        values: dict[str, list[float]] = {}
        for by_column in seeds.values():
            for name, vs in by_column.items():
                values.setdefault(name, []).append(statistics.mean(vs))
        rows.append(Row(key, values))
    order = lambda row: [
        sweep.swept[k].index(v) if v in sweep.swept.get(k, []) else -1 for k, v in zip(row_keys, row.key)
    ]
    return Table(row_keys, columns, sorted(rows, key=order))


def _setting(cell, key: str) -> str:
    """The cell's value of a swept key; the seeds from metrics.json when not overridden."""
    if key in cell.overrides:
        return cell.overrides[key]
    config = cell.metrics["config"]
    return str({"seed": config.get("seed"), BASE_MODEL_KEY: config.get("finetune_seed")}.get(key, ""))


def _cell(table: Table, row: Row, col: Column, bold: set, fmt: str) -> str:
    mean, ci = row.mean(col.name), row.ci95(col.name)
    if mean is None:
        return "–"
    text = f"{mean:.3f} ± {ci:.3f}" if fmt == "md" else f"{mean:.3f} $\\pm$ {ci:.3f}"
    if (row.key, col.name) in bold:
        text = f"**{text}**" if fmt == "md" else f"\\textbf{{{text}}}"
    return text


def to_markdown(table: Table) -> str:
    bold = table.best()
    header = [*table.row_keys, "n", *(c.name for c in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.rows:
        cells = [*row.key, str(row.n), *(_cell(table, row, c, bold, "md") for c in table.columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: Table) -> str:
    bold = table.best()
    escape = lambda s: str(s).replace("_", r"\_")
    header = [*table.row_keys, "n", *(c.name for c in table.columns)]
    lines = [
        r"\begin{tabular}{" + "l" * (len(table.row_keys) + 1) + "c" * len(table.columns) + "}",
        r"\toprule",
        " & ".join(escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    for row in table.rows:
        cells = [*(escape(k) for k in row.key), str(row.n), *(_cell(table, row, c, bold, "tex") for c in table.columns)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def flat(table: Table) -> tuple[list[str], list[list]]:
    """Header and rows of plain numbers: the row keys, n, then each column's mean, std and 95%
    interval half-width."""
    header = [*table.row_keys, "n", *(f"{c.name} {stat}" for c in table.columns for stat in ("mean", "std", "ci95"))]
    rows = [
        [*row.key, row.n, *(v for c in table.columns for v in (row.mean(c.name), row.std(c.name), row.ci95(c.name)))]
        for row in table.rows
    ]
    return header, rows


def to_csv(table: Table) -> str:
    """Plain numbers, for other tools."""
    header, rows = flat(table)
    keys = len(table.row_keys) + 1  # the row keys and n, written as they are
    cells = lambda row: [str(v) for v in row[:keys]] + [f"{v:.6f}" if v is not None else "" for v in row[keys:]]
    return "\n".join([",".join(header), *(",".join(cells(row)) for row in rows)]) + "\n"
