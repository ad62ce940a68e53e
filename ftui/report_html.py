"""The page and the README of `ftui report` (ftui/report.py). Every value is escaped with the standard
library's `html.escape`; the page has inline CSS only and relative links, so it opens from disk with no server
and reaches nothing outside its folder."""

from __future__ import annotations

from html import escape
from typing import Any

from ftui.report_model import RUN_COLUMNS, HeatmapEntry, Report

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.meta dt { font-weight: bold; } dl.meta dd { margin: 0; font-family: monospace; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
.note { color: #8a5a00; } .files a { margin-right: 1em; }
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def _table(rows: list[dict[str, Any]], columns: list[str], text_columns: tuple[str, ...] = ()) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f'<th class="{"text" if c in text_columns else ""}">{escape(c)}</th>' for c in columns)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="{"text" if c in text_columns else ""}">{escape(_fmt(row.get(c)))}</td>'
            for c in columns
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _heatmap_section(entry: HeatmapEntry) -> str:
    title = entry.title or f"{entry.name} ({entry.sets})"
    parts = [f'<section class="heatmap" id="{escape(entry.name)}-{escape(entry.sets)}">']
    parts.append(f"<h3>{escape(title)}</h3>")
    if entry.problem:
        parts.append(f'<p class="note">{escape(entry.problem)}</p>')
    if "png" in entry.files:
        alt = f"heatmap {entry.name}, {entry.sets} sets"
        parts.append(f'<figure><img src="{escape(entry.files["png"])}" alt="{escape(alt)}"></figure>')
        if entry.missing_cells:
            parts.append(f'<p class="note">{entry.missing_cells} cell(s) not evaluated yet (grey).</p>')
        if entry.stale:
            parts.append(f'<p class="note">{escape(entry.stale)}</p>')
        links = " ".join(
            f'<a href="{escape(entry.files[k])}">{k.upper()}</a>'
            for k in ("png", "svg", "csv")
            if k in entry.files
        )
        parts.append(f'<p class="files">files: {links}</p>')
    if entry.scores:
        parts.append(
            f"<h4>prediction scores ({escape(entry.family)} from {escape(entry.predict_from or '')})</h4>"
        )
        columns = ["model"] + [
            f"{p}_{m}" for p in ("all", "trained", "transfer") for m in ("mae", "rmse", "r2")
        ]
        parts.append(_table(entry.scores, columns, ("model",)))
    if entry.interference:
        parts.append("<h4>interference: mean error (predicted - actual) on transfer cells, per task</h4>")
        parts.append(
            _table(entry.interference, ["task", "short", "mean_error", "cells", "runs"], ("task", "short"))
        )
    parts.append("</section>")
    return "\n".join(parts)


def render_index(report: Report) -> str:
    meta = [
        ("registry", report.registry),
        ("profile", report.profile),
        ("runs folder", report.runs_dir),
        ("commit", report.commit),
        ("date", report.date),
        ("prediction model", report.model),
    ]
    meta_html = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in meta)
    sections = "\n".join(_heatmap_section(e) for e in report.heatmaps)
    runs_table = _table(report.runs, list(RUN_COLUMNS), ("key", "experiment", "tasks", "state", "result"))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ftui report: {escape(report.registry)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>ftui report</h1>
<dl class="meta">{meta_html}</dl>
<h2>Heatmaps</h2>
{sections or "<p>the registry declares no [[heatmap]]</p>"}
<h2>Runs</h2>
<p>also as <a href="runs.csv">runs.csv</a> and <a href="runs.json">runs.json</a></p>
{runs_table}
</body>
</html>
"""


def render_readme(report: Report) -> str:
    lines = [
        "# ftui report",
        "",
        f"- registry: `{report.registry}`",
        f"- profile: `{report.profile}`",
        f"- runs folder: `{report.runs_dir}`",
        f"- commit: `{report.commit}`",
        f"- date: {report.date}",
        f"- prediction model: `{report.model}`",
        "",
        "Open `index.html` in a browser (no server needed). Figures are in `heatmaps/` (PNG, SVG, and the",
        "numbers as CSV), prediction scores and interference summaries in `tables/`, the run table in",
        "`runs.csv` / `runs.json`. Written by `ftui report`.",
        "",
        "## Heatmaps",
        "",
    ]
    for e in report.heatmaps:
        title = e.title or f"{e.name} ({e.sets})"
        lines.append(f"### {title}")
        lines.append("")
        if e.problem:
            lines += [f"_{e.problem}_", ""]
        if "png" in e.files:
            lines += [f"![{e.name} {e.sets}]({e.files['png']})", ""]
            if e.missing_cells:
                lines += [f"{e.missing_cells} cell(s) not evaluated yet.", ""]
            if e.stale:
                lines += [e.stale, ""]
        for kind in ("scores", "interference"):
            if kind in e.files:
                lines.append(f"- {kind}: [{e.files[kind]}]({e.files[kind]})")
        lines.append("")
    counts: dict[str, int] = {}
    for run in report.runs:
        counts[run["state"]] = counts.get(run["state"], 0) + 1
    lines += ["## Runs", "", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none", ""]
    return "\n".join(lines)
