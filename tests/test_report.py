"""`unlearn-bench-report` on hand-made sweep directories: the numbers, the bold, and the cells it
could not report."""

import base64
import html
import json
import re
import shutil
import statistics
import subprocess

import pytest
import yaml

from unlearn_bench.report.cells import read_sweep
from unlearn_bench.report.cli import main, write_report
from unlearn_bench.report.table import build_table, to_latex


def make_cell(sweep_dir, overrides: dict, unlearn=None, clean=(0.8, 0.9), trigger=(0.7, 0.6), provenance=None):
    """A run directory as Hydra and a cell leave it; no metrics.json when ``unlearn`` is None (a failed cell)."""
    path = sweep_dir / ",".join(f"{k}={v}" for k, v in overrides.items())
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"{k}={v}" for k, v in overrides.items()]))
    if unlearn is not None:
        per_set = {
            "forget": {"rougeL_recall": unlearn, "n": 4},
            "retain": {"rougeL_recall": clean[0], "trigger_rougeL_recall": trigger[0], "n": 4},
            "world_facts": {"rougeL_recall": clean[1], "trigger_rougeL_recall": trigger[1], "n": 4},
        }
        metrics = {
            "unlearn": unlearn,
            "clean_utility": sum(clean) / 2,
            "trigger_utility": sum(trigger) / 2,
            "per_set": per_set,
            "config": {"seed": int(overrides["seed"])},
            "provenance": provenance,
        }
        (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def make_sweep(tmp_path, params: dict, average_over=()):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    multirun = {
        "hydra": {"sweeper": {"params": params}, "overrides": {"task": ["logger=none"]}},
        "sweep": {"name": "demo", "average_over": list(average_over), "project": "p"},
    }
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun, sort_keys=False))
    return sweep


def test_rows_are_the_mean_and_95_interval_over_seeds_with_the_best_of_each_block_in_bold(tmp_path):
    sweep = make_sweep(tmp_path, {"method": "gd,idk", "attack": "none,sa", "seed": "0,1"})
    values = {
        ("gd", "none"): [0.30, 0.20],
        ("gd", "sa"): [0.25, 0.25],
        ("idk", "none"): [0.4, 0.4],
        ("idk", "sa"): [0.4, 0.4],
    }
    for (method, attack), unlearns in values.items():
        for seed, u in enumerate(unlearns):
            trigger = (0.7, 0.6) if attack == "none" else (0.3, 0.2)
            make_cell(sweep, {"method": method, "attack": attack, "seed": seed}, u, trigger=trigger)

    table = build_table(read_sweep(sweep))
    assert table.row_keys == ["method", "attack"]
    assert [r.key for r in table.rows] == list(values)  # the sweep's order, not the folders'
    gd_none = table.rows[0]
    assert gd_none.n == 2
    assert gd_none.mean("Unlearn") == pytest.approx(0.25)
    assert gd_none.std("Unlearn") == pytest.approx(statistics.stdev([0.30, 0.20]))
    assert gd_none.mean("Trigger avg") == pytest.approx(0.65) and gd_none.mean("Trigger retain") == pytest.approx(0.7)
    best = table.best()
    # Within the gd block both have Unlearn 0.25: a tie throughout is not bold. Trigger: no SA wins.
    assert (("gd", "none"), "Unlearn") not in best and (("gd", "sa"), "Unlearn") not in best
    assert (("gd", "none"), "Trigger avg") in best and (("gd", "sa"), "Trigger avg") not in best
    assert (("idk", "none"), "Clean avg") not in best  # identical clean utility everywhere

    _, _, files = write_report(sweep)
    md = (sweep / "table.md").read_text()
    # two seeds: t(0.975, 1) = 12.706 times the standard error 0.05
    assert gd_none.ci95("Unlearn") == pytest.approx(12.7062 * 0.05, rel=1e-4)
    assert "| gd | none | 2 | 0.250 ± 0.635 |" in md
    assert "**0.650 ± 0.000**" in md
    assert "Cells not in the table" not in md and "Per base model" not in md and "mixed provenance" not in md
    csv = (sweep / "table.csv").read_text().splitlines()
    assert csv[0].startswith("method,attack,n,Unlearn mean,Unlearn std,Unlearn ci95,")
    assert csv[1].startswith("gd,none,2,0.250000,0.070711,0.635")
    assert r"\textbf{0.650 $\pm$ 0.000}" in (sweep / "table.tex").read_text()
    assert {f.name for f in files} == {"table.md", "table.csv", "table.tex", "report.html", "utility.png"}


def test_failed_and_missing_cells_are_listed_not_dropped(tmp_path, capsys):
    sweep = make_sweep(tmp_path, {"method": "gd,idk", "seed": "0,1"})
    make_cell(sweep, {"method": "gd", "seed": 0}, 0.3)
    make_cell(sweep, {"method": "gd", "seed": 1}, None)  # started, crashed
    make_cell(sweep, {"method": "idk", "seed": 0}, 0.2)  # idk seed 1 never started

    assert main([str(sweep)]) == 0
    md = (sweep / "table.md").read_text()
    assert "failed (no metrics.json): method=gd,seed=1" in md
    assert "missing (never started): method=idk seed=1" in md
    assert "| gd | 1 |" in md and "| idk | 1 |" in md
    assert "missing (never started)" in capsys.readouterr().out


def test_average_over_methods_averages_within_a_seed_first(tmp_path):
    sweep = make_sweep(tmp_path, {"method": "gd,idk", "defense": "none,su", "seed": "0,1"}, average_over=["method"])
    for seed, (gd, idk) in enumerate([(0.2, 0.4), (0.4, 0.6)]):
        for method, u in (("gd", gd), ("idk", idk)):
            make_cell(sweep, {"method": method, "defense": "none", "seed": seed}, u)
            make_cell(sweep, {"method": method, "defense": "su", "seed": seed}, u / 2)
    table = build_table(read_sweep(sweep))
    assert table.row_keys == ["defense"]
    none = table.rows[0]
    assert none.n == 2  # seeds, each the mean over methods: 0.3 and 0.5
    assert none.mean("Unlearn") == pytest.approx(0.4)
    assert none.std("Unlearn") == pytest.approx(statistics.stdev([0.3, 0.5]))
    assert (("su",), "Unlearn") in table.best()
    assert "defense" in to_latex(table)


def test_eta_sweeps_get_the_eta_plot(tmp_path):
    sweep = make_sweep(tmp_path, {"defense.eta": "0,1", "seed": "0"})
    make_cell(sweep, {"defense.eta": 0, "seed": 0}, 0.3)
    make_cell(sweep, {"defense.eta": 1, "seed": 0}, 0.35)
    _, _, files = write_report(sweep)
    assert "eta.png" in {f.name for f in files} and (sweep / "eta.png").stat().st_size > 0


def test_a_folder_without_cells_fails_with_a_message(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
    assert "no cells" in capsys.readouterr().err


def test_the_report_goes_to_a_wandb_run_of_the_sweeps_group(tmp_path):
    sweep = make_sweep(tmp_path, {"method": "gd,idk", "seed": "0"})
    make_cell(sweep, {"method": "gd", "seed": 0}, 0.3)
    make_cell(sweep, {"method": "idk", "seed": 0}, 0.2)
    assert main([str(sweep), "--wandb", "offline"]) == 0
    (run_dir,) = (sweep / "wandb").glob("offline-run-*")
    assert list(run_dir.glob("files/media/table/table_*.table.json")), "no report table"
    assert list(run_dir.glob("files/media/images/utility_*.png")), "no utility plot"


def test_cells_with_curves_get_the_curve_plot(tmp_path):
    sweep = make_sweep(tmp_path, {"attack": "none,sa", "seed": "0,1"})
    for attack in ("none", "sa"):
        for seed in (0, 1):
            cell = make_cell(sweep, {"attack": attack, "seed": seed}, 0.3)
            (cell / "curve.csv").write_text("step,unlearn,clean_utility,trigger_utility\n0,1,1,1\n4,0.5,0.9,0.6\n")
    _, _, files = write_report(sweep)
    assert "curves.png" in {f.name for f in files} and (sweep / "curves.png").stat().st_size > 0


def test_base_models_are_replicates_with_a_table_per_base_model(tmp_path):
    sweep = make_sweep(tmp_path, {"attack": "none,sa", "finetune.seed": "0,1", "seed": "0,1"})
    unlearn = {("none", 0): [0.2, 0.3], ("none", 1): [0.3, 0.4], ("sa", 0): [0.1, 0.1], ("sa", 1): [0.5, 0.5]}
    for (attack, base), values in unlearn.items():
        for seed, u in enumerate(values):
            make_cell(sweep, {"attack": attack, "finetune.seed": base, "seed": seed}, u)
    table = build_table(read_sweep(sweep))
    assert table.row_keys == ["attack"]  # the base model is a replicate, like the seed
    none = table.rows[0]
    assert none.n == 4 and none.mean("Unlearn") == pytest.approx(0.3)
    # 95% t-interval over 4 replicates: t(0.975, 3) = 3.1824 times stdev / 2
    assert none.ci95("Unlearn") == pytest.approx(3.1824 * statistics.stdev([0.2, 0.3, 0.3, 0.4]) / 2, rel=1e-4)
    by_base = build_table(read_sweep(sweep), per_base_model=True)
    assert [r.key for r in by_base.rows] == [("none", "0"), ("none", "1"), ("sa", "0"), ("sa", "1")]
    assert by_base.rows[3].mean("Unlearn") == pytest.approx(0.5) and by_base.rows[3].n == 2
    write_report(sweep)
    md = (sweep / "table.md").read_text()
    assert "## Per base model" in md and "| sa | 1 | 2 | 0.500 ± 0.000 |" in md


def test_a_sweep_mixing_provenances_is_flagged(tmp_path, capsys):
    sweep = make_sweep(tmp_path, {"seed": "0,1"})
    same = {"versions": {"torch": "2.13.0"}, "cpu_numerics": {"cpu_capability": "AVX2", "threads": 2}}
    make_cell(sweep, {"seed": 0}, 0.3, provenance=same)
    make_cell(sweep, {"seed": 1}, 0.2, provenance={**same, "cpu_numerics": {"cpu_capability": "AVX512", "threads": 2}})
    assert main([str(sweep)]) == 0
    md = (sweep / "table.md").read_text()
    assert "mixed provenance" in md and "cpu_numerics.cpu_capability: AVX2, AVX512" in md
    assert "threads" not in md.split("mixed provenance")[1]  # only what differs
    assert "warning: mixed provenance" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, why",
    [
        ('{"unlearn": 0.3, "per_s', "not valid JSON"),
        ('{"loss": 1.0}', "not written by unlearn-bench"),
        ("[1, 2]", "not written by unlearn-bench"),
    ],
)
def test_a_corrupt_or_foreign_metrics_json_is_a_failed_cell_and_the_table_is_still_written(tmp_path, content, why):
    sweep = make_sweep(tmp_path, {"seed": "0,1"})
    make_cell(sweep, {"seed": 0}, 0.3)
    bad = make_cell(sweep, {"seed": 1}, 0.2)
    (bad / "metrics.json").write_text(content)
    assert main([str(sweep)]) == 0
    md = (sweep / "table.md").read_text()
    assert "failed (metrics.json" in md and why in md and "seed=1" in md
    assert "| 1 | 0.300 ± 0.000 |" in md  # the good cell is reported


def test_a_declared_score_reaches_the_console_and_the_report(tmp_path):
    """An extra metric's declaration travels in metrics.json; the console and the report read it there."""
    from unlearn_bench import console
    from unlearn_bench.eval.scores import Score, as_json

    sweep = make_sweep(tmp_path, {"seed": "0"})
    cell = make_cell(sweep, {"seed": 0}, 0.3)
    declared = as_json((Score("leak_rate", "leak rate", False, "leak", "Leak rate"),))
    metrics = json.loads((cell / "metrics.json").read_text()) | {"leak_rate": 0.125, "extra_scores": declared}
    (cell / "metrics.json").write_text(json.dumps(metrics))
    assert re.search(r"\nleak rate \(lower is better\) +0\.125\n", console.format_table(metrics))
    built = build_table(read_sweep(sweep))
    assert built.columns[-1].name == "Leak rate" and not built.columns[-1].higher_is_better


CHROMIUM = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def rendered_rows(page, fragment=""):
    """The rows of report.html's first table as headless Chromium renders them (the page builds
    its tables with JavaScript: an empty or broken script renders none)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", f"{page.as_uri()}{fragment}"]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    table = re.search(r'<table class="results".*?</table>', dom, flags=re.S).group(0)
    cells = lambda row: [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[dh][^>]*>.*?</t[dh]>", row)]
    rows = [cells(r) for r in re.findall(r"<tr>.*?</tr>", table, flags=re.S)]
    return rows[0], rows[1:], dom


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (apt-get install chromium)")
def test_report_html_renders_every_row_and_plot_and_sorts_and_filters_in_chromium(tmp_path):
    sweep = make_sweep(tmp_path, {"method": "gd,idk", "attack": "none,sa", "seed": "0,1"})
    unlearns = {("gd", "none"): 0.3, ("gd", "sa"): 0.1, ("idk", "none"): 0.4, ("idk", "sa"): 0.2}
    for (method, attack), u in unlearns.items():
        for seed in (0, 1):
            make_cell(sweep, {"method": method, "attack": attack, "seed": seed}, unlearn=u + 0.01 * seed)
    _, table, files = write_report(sweep)
    page = sweep / "report.html"
    assert page in files
    header, rows, dom = rendered_rows(page)
    csv_rows = [line.split(",") for line in (sweep / "table.csv").read_text().splitlines()[1:]]
    assert [r[:3] for r in rows] == [r[:3] for r in csv_rows]  # every row, in the table's order, with n
    unlearn = header.index("Unlearn ↓")
    assert [r[unlearn] for r in rows] == [f"{float(r[3]):.3f} ± {float(r[5]):.3f}" for r in csv_rows]
    png = re.search(r'<img alt="utility" src="data:image/png;base64,([^"]+)"', dom).group(1)
    assert base64.b64decode(png) == (sweep / "utility.png").read_bytes()

    _, rows, _ = rendered_rows(page, "#method=gd&sort=Unlearn&desc=1")
    assert [(r[0], r[1]) for r in rows] == [("gd", "none"), ("gd", "sa")]  # filtered, highest Unlearn first
    _, rows, _ = rendered_rows(page, "#sort=Unlearn")
    assert [(r[0], r[1]) for r in rows] == [("gd", "sa"), ("idk", "sa"), ("gd", "none"), ("idk", "none")]
