"""Writing a heatmap to a file: a figure (PNG, PDF, SVG) or the numbers (CSV, JSON), chosen by the suffix.

Matplotlib is imported inside `figure_bytes` only, so the rest of ftui starts fast. It draws with Agg through
the object-oriented API (a `Figure` on a `FigureCanvasAgg`, never pyplot), so a figure can be written over
SSH without a display, and whatever backend the environment names (MPLBACKEND=inline inherited from Jupyter,
a Qt4Agg from an old matplotlibrc) plays no part. Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Final

from ftui.analysis.colours import ERROR_RANGE, GREEN_RANGE, MISSING, text_colour
from ftui.analysis.view import HeatmapView, format_value
from ftui.atomic import atomic_write_bytes

FIGURE_FORMATS: Final = ("png", "pdf", "svg")
DATA_FORMATS: Final = ("csv", "json")
EXPORT_FORMATS: Final = FIGURE_FORMATS + DATA_FORMATS


class ExportError(ValueError):
    """The export path has a suffix we cannot write."""


def export_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in EXPORT_FORMATS:
        raise ExportError(
            f"{path}: cannot export to {('.' + suffix) if suffix else 'a file without a suffix'} "
            f"(allowed: {', '.join('.' + s for s in EXPORT_FORMATS)})"
        )
    return suffix


def export(view: HeatmapView, path: Path) -> Path:
    """Write `view` to `path` in the format its suffix names; returns the path written."""
    kind = export_format(path)
    if kind == "csv":
        data = to_csv(view).encode("utf-8")
    elif kind == "json":
        data = (json.dumps(view.to_dict(), indent=2) + "\n").encode("utf-8")
    else:
        data = figure_bytes(view, kind)
    atomic_write_bytes(path, data)
    return path


def to_csv(view: HeatmapView) -> str:
    """One line per panel and row: panel, experiment, trained tasks, seeds done/expected, one column per task.

    Values are written with full precision (repr); a missing cell is an empty field.
    """
    matrix = view.matrix
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["panel", "experiment", "tasks", "seeds_done", "seeds_expected", *[c.name for c in matrix.columns]]
    )
    for panel in view.panels():
        for r, row in enumerate(matrix.rows):
            values = ["" if not math.isfinite(v) else repr(float(v)) for v in panel.values[r].tolist()]
            writer.writerow(
                [
                    panel.name,
                    row.name,
                    "+".join(row.tasks),
                    matrix.seeds_done[r],
                    matrix.seeds_expected[r],
                    *values,
                ]
            )
    return out.getvalue()


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def figure_bytes(view: HeatmapView, kind: str) -> bytes:
    """Render the figure: one panel, or actual / predicted / error side by side; returns the file's bytes."""
    import numpy as np

    _import_matplotlib()
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    matrix = view.matrix
    panels = view.panels()
    n_rows, n_cols = len(matrix.rows), len(matrix.columns)
    # Fixed geometry in inches instead of tight_layout: a layout pass costs as much as drawing the figure.
    cell_w, cell_h = 0.62, 0.42
    left, gap, bar, bar_labels, top, bottom = 1.7, 0.35, 0.14, 0.45, 0.9, 0.2
    panel_w, grid_h = n_cols * cell_w, n_rows * cell_h
    width = left + len(panels) * (panel_w + 0.08 + bar + bar_labels) + (len(panels) - 1) * gap + 0.1
    title = f"{view.title()} · {view.missing_line()}"
    if any(matrix.stale_rows):  # the legend of the hatching, on a second title line
        title += "\n" + view.stale_line("hatched")
        top += 0.2
    height = top + grid_h + bottom
    longest = max(len(line) for line in title.splitlines())
    width = max(width, 0.4 + 0.075 * longest)  # a one-panel figure must not clip its title (10 pt text)
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes: list[Any] = []
    bars: list[Any] = []
    for index in range(len(panels)):
        x = left + index * (panel_w + 0.08 + bar + bar_labels + gap)
        axes.append(fig.add_axes((x / width, bottom / height, panel_w / width, grid_h / height)))
        bar_x = x + panel_w + 0.08
        bars.append(fig.add_axes((bar_x / width, bottom / height, bar / width, grid_h / height)))
    trained = matrix.trained
    row_labels = [f"{name} ({tasks})" for name, tasks in zip(view.row_labels, view.row_tasks(), strict=True)]
    row_labels = [f"{label} {done}/{n}" if n > 1 else label for label, done, n in
                  zip(row_labels, matrix.seeds_done, matrix.seeds_expected, strict=True)]  # fmt: skip
    for ax, bar_ax, panel in zip(axes, bars, panels, strict=True):
        name, (vmin, vmax) = ("coolwarm", ERROR_RANGE) if panel.scale == "error" else ("Greens", GREEN_RANGE)
        cmap = colormaps[name].with_extremes(bad=_hex(MISSING))
        shade = np.ma.masked_invalid(panel.shade)
        image = ax.imshow(shade, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
        raw_values = view.raw and panel.name == "actual"
        for r in range(n_rows):
            for c in range(n_cols):
                value = float(panel.values[r, c])
                if math.isfinite(value):
                    rgba = cmap(np.clip((float(panel.shade[r, c]) - vmin) / (vmax - vmin), 0.0, 1.0))
                    ink = _hex(text_colour(tuple(round(255 * x) for x in rgba[:3])))  # type: ignore[arg-type]
                    label = format_value(value, raw_values, signed=panel.scale == "error")
                else:
                    ink, label = "#555555", "n/a"
                ax.text(c, r, label, ha="center", va="center", fontsize=8, color=ink)
                if matrix.stale_rows[r]:  # stale: a hatched cell (the title says what the hatching means)
                    ax.add_patch(
                        Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#7a5a00",
                                  linewidth=0)
                    )  # fmt: skip
                if trained[r, c]:
                    ax.text(
                        c + 0.46,
                        r - 0.42,
                        "T",
                        ha="right",
                        va="top",
                        fontsize=6,
                        color=ink,
                        fontweight="bold",
                    )
        ax.set_xticks(range(n_cols), view.column_labels)
        ax.xaxis.tick_top()
        ax.set_yticks(range(n_rows), row_labels if ax is axes[0] else [""] * n_rows)
        ax.tick_params(length=0, labelsize=8)
        ax.set_title(panel.title, fontsize=9, pad=18)
        for spine in ax.spines.values():
            spine.set_visible(False)
        colourbar = fig.colorbar(image, cax=bar_ax)
        colourbar.ax.tick_params(labelsize=7)
        if view.raw and panel.name == "actual":
            colourbar.set_ticks([0, 1], labels=["worst", "best"])
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    buffer = io.BytesIO()
    metadata: dict[str, Any] = {"Creator": "ftui"} if kind != "png" else {"Software": "ftui"}
    fig.savefig(buffer, format=kind, dpi=150, metadata=metadata)
    return buffer.getvalue()


def _import_matplotlib() -> None:
    """Import matplotlib without reading MPLBACKEND: `import matplotlib` validates the variable and fails on a
    value it does not know ("inline", "module://matplotlib_inline.backend_inline" outside Jupyter,
    "Qt4Agg"). The variable is hidden for the import only, so the processes ftui starts still inherit it."""
    saved = os.environ.pop("MPLBACKEND", None)
    try:
        import matplotlib  # noqa: F401
    finally:
        if saved is not None:
            os.environ["MPLBACKEND"] = saved
