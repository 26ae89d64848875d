"""report.html: a sweep's report as one self-contained page that opens from disk, with no server,
account or network: its tables, sortable by any column and filtered by each row key, and its plots
inline. The state can be set in the address (``report.html#method=gd&sort=Unlearn&desc=1``), so a
view can be shared as a link."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from unlearn_bench.report.table import Table


def table_data(table: Table) -> dict:
    """What the page renders: the row keys, the columns (and which way is better), and per row its
    key, n, each column's mean and 95% half-width, and the columns where it is best of its block."""
    best = table.best()
    return {
        "keys": table.row_keys,
        "columns": [{"name": c.name, "higher_is_better": c.higher_is_better} for c in table.columns],
        "rows": [
            {
                "key": list(row.key),
                "n": row.n,
                "values": {c.name: [row.mean(c.name), row.ci95(c.name)] for c in table.columns},
                "best": [c.name for c in table.columns if (row.key, c.name) in best],
            }
            for row in table.rows
        ],
    }


def to_html(title: str, intro: str, tables: dict[str, Table], plots: list[Path], notes: list[str]) -> str:
    """The page: ``tables`` (heading -> table), the PNG ``plots`` embedded, and ``notes`` (cells
    not in the table, provenance warnings) as a list."""
    data = json.dumps({name: table_data(t) for name, t in tables.items()}).replace("</", "<\\/")
    images = "\n".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{html.escape(p.name)}</figcaption></figure>'
        for p in plots
    )
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return PAGE.format(
        title=html.escape(title),
        intro=html.escape(intro),
        data=data,
        images=images,
        notes=f"<h2>Notes</h2><ul>{notes_html}</ul>" if notes else "",
        script=SCRIPT,
    )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; white-space: nowrap; }}
th {{ background: #f3f3f3; cursor: pointer; user-select: none; }}
td.key, th.key {{ text-align: left; }}
td.best {{ font-weight: bold; }}
.filters label {{ margin-right: 1em; }}
figure {{ display: inline-block; margin: 1em; }}
img {{ max-width: 640px; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{intro}</p>
<div class="filters" id="filters"></div>
<div id="tables"></div>
{images}
{notes}
<script type="application/json" id="data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

# Sorting and filtering: the rows of every table are re-rendered from the embedded data.
SCRIPT = """
const DATA = JSON.parse(document.getElementById("data").textContent);
const state = Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
const fmt = v => (v === null || v === undefined) ? "\\u2013" : v.toFixed(3);

function keysOf() {
  const keys = {};
  for (const t of Object.values(DATA)) t.keys.forEach((k, i) => {
    keys[k] = keys[k] || new Set();
    t.rows.forEach(r => keys[k].add(r.key[i]));
  });
  return keys;
}

function filters() {
  const box = document.getElementById("filters");
  for (const [key, values] of Object.entries(keysOf())) {
    const select = document.createElement("select");
    select.name = key;
    for (const v of ["all", ...values]) select.add(new Option(v, v, false, state[key] === v));
    select.onchange = () => { state[key] = select.value; render(); };
    const label = document.createElement("label");
    label.append(key + " ", select);
    box.append(label);
  }
}

function visible(t, row) {
  return t.keys.every((k, i) => !state[k] || state[k] === "all" || state[k] === row.key[i]);
}

function sorted(t, rows) {
  const col = state.sort;
  if (!col || !t.columns.some(c => c.name === col) && col !== "n") return rows;
  const value = r => col === "n" ? r.n : (r.values[col][0] ?? NaN);
  const sign = state.desc === "1" ? -1 : 1;
  return [...rows].sort((a, b) => (isNaN(value(a)) - isNaN(value(b))) || sign * (value(a) - value(b)));
}

function header(t, table) {
  const tr = table.createTHead().insertRow();
  const cell = (text, cls, sortKey) => {
    const th = document.createElement("th");
    const sorting = sortKey && state.sort === sortKey;
    th.textContent = text + (sorting ? (state.desc === "1" ? " \\u25bc" : " \\u25b2") : "");
    if (cls) th.className = cls;
    if (sortKey) th.onclick = () => {
      state.desc = state.sort === sortKey && state.desc !== "1" ? "1" : "0";
      state.sort = sortKey;
      render();
    };
    tr.append(th);
  };
  t.keys.forEach(k => cell(k, "key"));
  cell("n", "", "n");
  t.columns.forEach(c => cell(c.name + (c.higher_is_better ? " \\u2191" : " \\u2193"), "", c.name));
}

function render() {
  history.replaceState(null, "", "#" + new URLSearchParams(state).toString());
  const box = document.getElementById("tables");
  box.replaceChildren();
  for (const [name, t] of Object.entries(DATA)) {
    const heading = document.createElement("h2");
    heading.textContent = name;
    const table = document.createElement("table");
    table.className = "results";
    table.dataset.name = name;
    header(t, table);
    const body = table.createTBody();
    for (const row of sorted(t, t.rows.filter(r => visible(t, r)))) {
      const tr = body.insertRow();
      row.key.forEach(k => { const td = tr.insertCell(); td.className = "key"; td.textContent = k; });
      tr.insertCell().textContent = row.n;
      for (const c of t.columns) {
        const [mean, ci] = row.values[c.name];
        const td = tr.insertCell();
        td.textContent = mean === null ? fmt(null) : fmt(mean) + " \\u00b1 " + fmt(ci);
        td.dataset.value = mean === null ? "" : mean;
        if (row.best.includes(c.name)) td.className = "best";
      }
    }
    box.append(heading, table);
  }
}

filters();
render();
"""
