"""Loss against step with labelled axes (log scale on y), drawn by textual-plotext (a Plotext canvas).

One or several named curves, told apart by their marker character, not only by colour (NO_COLOR and
monochrome terminals); checkpoints as `◆` points on the first curve and the end of warm-up as a vertical
line. Smoothing (an EMA) is a toggle. What was last handed to Plotext is kept in `drawn`, so a test can check
exactly the data the plot received.

The log scale is ours: Plotext's own `yscale("log")` takes the logarithm of the data in place on every
build, so the second frame of a plot with a legend crashed (plotext 5.3.2). We hand it log10(loss) on a
linear axis and label the ticks with the losses themselves.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label
from textual_plotext import PlotextPlot

from ftui.curves import Curve, ema

# One marker per curve, in order: distinct shapes that read without colour.
MARKERS = ("•", "x", "+", "o", "*", "#", "@", "%")
COLOURS = ("cyan", "orange", "green", "magenta", "yellow", "blue", "red", "white")
CHECKPOINT_MARKER = "◆"


@dataclass(frozen=True)
class DrawnSeries:
    """One call to Plotext: what it was given."""

    label: str
    steps: tuple[int, ...]
    values: tuple[float, ...]
    marker: str


class LossPlot(Vertical):
    DEFAULT_CSS = """
    LossPlot { height: 1fr; }
    LossPlot > #plot-caption { height: 1; color: $text-muted; padding: 0 1; }
    LossPlot > PlotextPlot { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, marks: bool = True) -> None:
        super().__init__(id=id)
        self.curves: list[Curve] = []
        self.smoothing = False
        self.marks = marks  # checkpoints and warm-up of the first curve (the run screen; not when comparing)
        self.drawn: list[DrawnSeries] = []

    def compose(self) -> ComposeResult:
        yield Label("loss: no steps yet", id="plot-caption", markup=False)
        yield PlotextPlot()

    def on_mount(self) -> None:
        self.redraw()

    def set_curves(self, curves: Sequence[Curve]) -> None:
        self.curves = list(curves)
        self.redraw()

    def toggle_smoothing(self) -> bool:
        self.smoothing = not self.smoothing
        self.redraw()
        return self.smoothing

    @staticmethod
    def marker_of(index: int) -> str:
        return MARKERS[index % len(MARKERS)]

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.xlabel("step")
        plt.ylabel("loss (log)")
        drawn: list[DrawnSeries] = []
        for index, curve in enumerate(self.curves):
            points = [(s, v) for s, v in zip(curve.steps, self._values(curve), strict=True) if v > 0]
            if not points:
                continue
            steps, values = [p[0] for p in points], [p[1] for p in points]
            marker = self.marker_of(index)
            label = curve.name  # the legend shows the marker beside it
            colour = COLOURS[index % len(COLOURS)]
            plt.plot(steps, [math.log10(v) for v in values], marker=marker, color=colour, label=label)
            drawn.append(DrawnSeries(label, tuple(steps), tuple(values), marker))
        first = self.curves[0] if self.curves else None
        if self.marks and first is not None and drawn:
            points = [(s, _value_at(drawn[0].steps, drawn[0].values, s)) for s in first.checkpoints]
            if points:
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                plt.scatter(
                    xs, [math.log10(y) for y in ys], marker=CHECKPOINT_MARKER, color="red", label="checkpoint"
                )
                drawn.append(DrawnSeries("checkpoint", tuple(xs), tuple(ys), CHECKPOINT_MARKER))
            if first.warmup_steps is not None:
                plt.vertical_line(first.warmup_steps, color="gray")
        values = [v for series in drawn for v in series.values]
        if values:
            ticks = log_ticks(min(values), max(values))
            plt.yticks([math.log10(t) for t in ticks], [f"{t:.3g}" for t in ticks])
            steps = [s for series in drawn for s in series.steps]
            xticks = step_ticks(min(steps), max(steps))
            plt.xticks([float(x) for x in xticks], [str(x) for x in xticks])
        self.drawn = drawn
        self.query_one("#plot-caption", Label).update(self.caption())
        plot.refresh()

    def _values(self, curve: Curve) -> list[float]:
        return ema(curve.losses) if self.smoothing else list(curve.losses)

    def caption(self) -> str:
        shown = [c for c in self.curves if c.steps]
        if not shown:
            return "loss: no steps yet"
        mode = "EMA 0.9 (s: raw)" if self.smoothing else "raw (s: smooth)"
        if len(self.curves) > 1:
            return f"loss, log scale, {mode}"
        curve = shown[0]
        parts = [f"loss {curve.losses[-1]:.4f} (min {min(curve.losses):.4f}) at step {curve.steps[-1]}"]
        if curve.total_steps:
            parts[0] += f"/{curve.total_steps}"
        if self.marks and curve.warmup_steps is not None:
            parts.append(f"│ warm-up ends {curve.warmup_steps}")
        if self.marks and curve.checkpoints:
            parts.append(f"{CHECKPOINT_MARKER} {len(curve.checkpoints)} ckpt")
        parts.append(mode)
        return " · ".join(parts)


def log_ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Round values (1, 2, 5 x 10^k; every digit when the range is narrow) between `low` and `high`."""
    if high <= low:
        return [low]
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for mantissas in ((1, 2, 5), tuple(range(1, 10))):
        ticks = [m * 10.0**k for k in range(first, last + 1) for m in mantissas]
        ticks = [t for t in ticks if low <= t <= high]
        if len(ticks) >= 3 or (len(ticks) == 2 and len(mantissas) > 3):
            step = math.ceil(len(ticks) / most)
            return ticks[::step]
    return [low, high]


def step_ticks(low: int, high: int, most: int = 6) -> list[int]:
    """Whole steps at a round spacing (1, 2 or 5 x 10^k), at most `most` of them, from `low` to `high`."""
    if high <= low:
        return [low]
    spacings = (m * 10**k for k in range(19) for m in (1, 2, 5))
    spacing = next(s for s in spacings if (high - low) / s <= most - 1)
    start = math.ceil(low / spacing) * spacing
    return list(range(start, high + 1, spacing)) or [low, high]


def _value_at(steps: Sequence[int], values: Sequence[float], step: int) -> float:
    """The plotted value at `step`, or at the nearest logged step before it (the first one if none)."""
    i = bisect.bisect_right(steps, step) - 1
    return values[max(0, i)]
