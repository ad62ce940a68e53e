"""What `ftui report` holds: the records that ftui/report.py fills and ftui/report_html.py renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RUN_COLUMNS = ("key", "experiment", "seed", "tasks", "state", "step", "total_steps", "loss", "result")


class ReportError(Exception):
    """The report cannot be written where asked (message names the folder)."""


@dataclass
class HeatmapEntry:
    name: str
    family: str
    sets: str
    title: str = ""
    files: dict[str, str] = field(
        default_factory=dict
    )  # "png" | "svg" | "csv" -> path relative to the report
    predict_from: str | None = None
    missing_cells: int = 0
    stale: str = ""  # the legend of the hatched (stale) cells, naming their runs; "" when none
    problem: str = ""  # why the heatmap (or its predictions) could not be drawn
    scores: list[dict[str, Any]] = field(default_factory=list)
    interference: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Report:
    registry: str
    profile: str
    runs_dir: str
    commit: str
    date: str
    model: str
    heatmaps: list[HeatmapEntry]
    runs: list[dict[str, Any]]
    seconds: float = 0.0
