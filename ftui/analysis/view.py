"""What a heatmap shows, independent of where it is drawn: panels, labels, title, and the matrix as data.

The terminal renderer (`render.py`), the app and the exported figures and files (`export.py`) all draw a
`HeatmapView`, so the screen and the files show the same rows, columns, values and markers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ftui.analysis.colours import Scale
from ftui.analysis.matrix import FamilyMatrix
from ftui.analysis.predict import FITTED_MODELS, Prediction

PanelName = Literal["actual", "predicted", "error"]
STALE_MARK = "*"  # after a cell of a stale run, in the grid (the figure hatches the cell)


@dataclass(frozen=True, eq=False)
class Panel:
    """One grid: the numbers shown, and `shade` (the colour position: 0..1 on green, -0.5..0.5 for errors)."""

    name: PanelName
    title: str
    values: np.ndarray
    shade: np.ndarray
    scale: Scale


@dataclass(frozen=True, eq=False)
class HeatmapView:
    matrix: FamilyMatrix
    prediction: Prediction | None = None

    @property
    def raw(self) -> bool:
        return self.matrix.scheme == "raw"

    def panels(self) -> list[Panel]:
        actual = self.matrix.values
        panels = [Panel("actual", "actual", actual, self._shade(actual), "green")]
        if self.prediction is not None:
            model = self.prediction.model
            how = " (leave-one-out)" if model in FITTED_MODELS else ""
            predicted, error = self.prediction.predicted, self.prediction.error
            panels.append(Panel("predicted", f"predicted: {model}{how}", predicted, predicted, "green"))
            panels.append(Panel("error", "error = predicted - actual", error, error, "error"))
        return panels

    def _shade(self, values: np.ndarray) -> np.ndarray:
        """Normalised values shade as they are; raw metrics per column from worst (0) to best (1)."""
        if not self.raw:
            return values
        shade = np.full(values.shape, np.nan)
        for c, metric in enumerate(self.matrix.metrics):
            column = values[:, c]
            finite = column[np.isfinite(column)]
            if len(finite) == 0:
                continue
            low, high = float(finite.min()), float(finite.max())
            if high == low:
                shade[:, c] = np.where(np.isfinite(column), 0.5, np.nan)
                continue
            position = (column - low) / (high - low)
            shade[:, c] = 1.0 - position if metric == "abs_error" else position
        return shade

    @property
    def row_labels(self) -> list[str]:
        return [row.name for row in self.matrix.rows]

    def row_tasks(self) -> list[str]:
        """Each row's trained tasks as short codes joined by '+', e.g. 'D+T'."""
        shorts = {column.name: column.short for column in self.matrix.columns}
        return ["+".join(shorts.get(task, task) for task in row.tasks) for row in self.matrix.rows]

    @property
    def column_labels(self) -> list[str]:
        return [column.short for column in self.matrix.columns]

    def seeds_label(self) -> str:
        return "seeds " + ", ".join(str(seed) for seed in self.matrix.seeds)

    def title(self) -> str:
        """Family, normalisation, sets and seeds: 'ft2 · perfect normalisation · atlantis sets · seeds 42'."""
        scheme = "raw metrics" if self.raw else f"{self.matrix.scheme} normalisation"
        return f"{self.matrix.family} · {scheme} · {self.matrix.sets} sets · {self.seeds_label()}"

    def missing_line(self) -> str:
        missing = self.matrix.missing
        line = f"{missing} cell{'' if missing == 1 else 's'} missing"
        if self.matrix.baseline_missing:
            base, seeds = self.matrix.baseline, ", ".join(str(seed) for seed in self.matrix.baseline_missing)
            line += f" (baseline {base} not evaluated, seed {seeds}: ftui eval {base})"
        return line

    def stale_line(self, mark: str = STALE_MARK) -> str:
        """The legend of the stale `mark`, naming the stale rows; "" when no row is stale."""
        names = [
            row.name for row, stale in zip(self.matrix.rows, self.matrix.stale_rows, strict=True) if stale
        ]
        if not names:
            return ""
        return f"{mark} = stale ({', '.join(names)}): made from weights trained since; ftui launch --stale"

    def to_dict(self) -> dict[str, Any]:
        """The view as plain JSON-ready data (NaN becomes None)."""
        matrix = self.matrix
        data: dict[str, Any] = {
            "title": self.title(),
            "family": matrix.family,
            "normalisation": matrix.scheme,
            "sets": matrix.sets,
            "seeds": list(matrix.seeds),
            "columns": [
                {"task": c.name, "short": c.short, "metric": m}
                for c, m in zip(matrix.columns, matrix.metrics, strict=True)
            ],
            "rows": [
                {
                    "experiment": row.name,
                    "tasks": list(row.tasks),
                    "seeds_done": done,
                    "seeds_expected": expected,
                    "stale": stale,
                }
                for row, done, expected, stale in zip(
                    matrix.rows, matrix.seeds_done, matrix.seeds_expected, matrix.stale_rows, strict=True
                )
            ],
            "missing_cells": matrix.missing,
            "model": self.prediction.model if self.prediction is not None else None,
            "panels": {panel.name: _json_matrix(panel.values) for panel in self.panels()},
        }
        if self.prediction is not None and self.prediction.params:
            data["fitted_params"] = list(self.prediction.params)
        return data


def _json_matrix(values: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if math.isfinite(v) else None for v in row] for row in values.tolist()]


def format_value(value: float, raw: bool = False, signed: bool = False) -> str:
    """Two decimals (signed for errors); raw metrics of 1,000 or more as whole numbers with separators."""
    if not math.isfinite(value):
        return "·"
    if raw and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:+.2f}" if signed else f"{value:.2f}"
