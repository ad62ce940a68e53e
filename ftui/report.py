"""`ftui report`: one self-contained folder to hand to a colleague.

    report/
      index.html  README.md          the page (opens from disk, no server, no external resources) and its text
      heatmaps/<name>-<sets>.png .svg .csv    every [[heatmap]], per evaluation set; the three-panel figure
                                              (actual, predicted, error) where the heatmap has predict_from
      tables/predict-<name>-<sets>.csv        every prediction model's MAE / RMSE / R² (`ftui predict`)
      tables/interference-<name>-<sets>.csv   mean error per task on transfer cells
      runs.csv  runs.json                     the run table (`ftui list --json`'s rows)

The numbers come from ftui.analysis exactly as `ftui heatmap` and `ftui predict` compute them. A missing run
never stops the report: its cells are drawn as not evaluated, and a heatmap that cannot be computed is listed
with the reason. The folder is written under a temporary name and renamed at the end, so a reader never sees a
half-written report; an existing report folder (marked by REPORT_MARKER) is replaced, any other folder is not.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ftui.report_model import RUN_COLUMNS, HeatmapEntry, Report, ReportError

REPORT_MARKER = ".ftui-report"
SETS = ("atlantis", "standard")


def git_commit(where: Path) -> str:
    """The commit of the repository holding `where` (with "+modified" for uncommitted changes), or unknown."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+modified" if dirty.stdout.strip() else "")


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _heatmap(registry: Any, runs_dir: Path, heatmap: Any, sets: str, model: str, out: Path) -> HeatmapEntry:
    from ftui.analysis.export import export
    from ftui.analysis.predict import PredictionError
    from ftui.analysis.study import AnalysisError, build_view, score_family

    entry = HeatmapEntry(heatmap.name, heatmap.family, sets, predict_from=heatmap.predict_from)
    stem = f"heatmaps/{heatmap.name}-{sets}"
    view = None
    if heatmap.predict_from:
        try:
            view = build_view(registry, runs_dir, heatmap.name, model=model, sets=sets)
        except (AnalysisError, PredictionError, ValueError) as error:
            entry.problem = f"no predictions: {error}"
    try:
        if view is None:
            view = build_view(registry, runs_dir, heatmap.name, sets=sets)
    except (AnalysisError, PredictionError, ValueError) as error:
        entry.problem = str(error)
        return entry
    entry.title = view.title()
    entry.missing_cells = view.matrix.missing
    entry.stale = view.stale_line("hatched")
    for kind in ("png", "svg", "csv"):
        export(view, out / f"{stem}.{kind}")
        entry.files[kind] = f"{stem}.{kind}"
    if heatmap.predict_from and not entry.problem:
        try:
            scores = score_family(registry, runs_dir, heatmap.name, sets=sets, interference_model=model)
        except (AnalysisError, PredictionError, ValueError) as error:
            entry.problem = f"no scores: {error}"
            return entry
        for item in scores.scores:
            row: dict[str, Any] = {"model": item.model}
            for part in ("all", "trained", "transfer"):
                s = getattr(item, part)
                row |= {f"{part}_mae": _number(s.mae), f"{part}_rmse": _number(s.rmse)}
                row |= {f"{part}_r2": _number(s.r2), f"{part}_n": s.n}
            entry.scores.append(row)
        entry.interference = [
            {
                "task": t.task,
                "short": t.short,
                "mean_error": _number(t.mean_error),
                "cells": t.cells,
                "runs": t.rows,
            }
            for t in scores.interference
        ]
        entry.files["scores"] = _write_csv(
            out / f"tables/predict-{heatmap.name}-{sets}.csv", entry.scores, out
        )
        entry.files["interference"] = _write_csv(
            out / f"tables/interference-{heatmap.name}-{sets}.csv", entry.interference, out
        )
    return entry


def _write_csv(path: Path, rows: list[dict[str, Any]], root: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    path.write_text(buffer.getvalue())
    return path.relative_to(root).as_posix()


def _run_rows(registry: Any, runs_dir: Path) -> list[dict[str, Any]]:
    from ftui.queue.store import Store
    from ftui.status import list_rows

    store = Store(runs_dir, loss_history=1, keep_reading=True)  # an archive's queue may be unreadable
    try:
        return [row.to_json() for row in list_rows(registry, store, list(registry.runs()))]
    finally:
        store.close()


def build_report(
    registry: Any, registry_path: Path, runs_dir: Path, out: Path, *, profile: str | None, model: str = "max"
) -> Report:
    """Write the report into `out` (replaced if it is an earlier report); returns what it holds."""
    from ftui.report_html import render_index, render_readme

    started = time.monotonic()
    out = Path(out)
    if out.exists() and not (out / REPORT_MARKER).exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReportError(f"{out}: exists and is not an ftui report; choose another --out (nothing written)")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (work / "heatmaps").mkdir()
        (work / "tables").mkdir()
        entries = [
            _heatmap(registry, runs_dir, h, sets, model, work) for h in registry.heatmaps for sets in SETS
        ]
        runs = _run_rows(registry, runs_dir)
        report = Report(
            registry=str(registry_path),
            profile=profile or registry.study.default_profile,
            runs_dir=str(runs_dir),
            commit=git_commit(registry_path.resolve().parent),
            date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            model=model,
            heatmaps=entries,
            runs=runs,
        )
        _write_csv(work / "runs.csv", [{c: r.get(c) for c in RUN_COLUMNS} for r in runs], work)
        (work / "runs.json").write_text(json.dumps(runs, indent=1) + "\n")
        (work / "index.html").write_text(render_index(report), encoding="utf-8")
        (work / "README.md").write_text(render_readme(report), encoding="utf-8")
        (work / REPORT_MARKER).write_text("written by ftui report\n")
        os.chmod(
            work, 0o777 & ~_umask()
        )  # mkdtemp makes it 0700; a shared report should read like any folder
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    report.seconds = time.monotonic() - started
    return report


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
