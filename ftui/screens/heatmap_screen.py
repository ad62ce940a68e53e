"""Heatmaps: any `[[heatmap]]` of experiments.toml as coloured grids, with predictions and their scores.

Keys cycle the choices (keyboard only, and every choice is also in the command palette). The matrices are
built in a thread worker from the eval.json files; the grids are drawn by the analysis module's renderer, so
they match `ftui heatmap` and the exported figures. Side by side when the panels fit the width, else stacked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from ftui.analysis.names import MODELS, SCHEMES, SET_NAMES
from ftui.analysis.predict import ModelScore
from ftui.analysis.study import browse_heatmap
from ftui.analysis.view import HeatmapView, Panel
from ftui.app_data import AppData
from ftui.messages import ActionFailed
from ftui.screens.export_modal import ExportModal
from ftui.screens.keys import Command, Key, bindings, palette
from ftui.widgets.heatmap_grid import HeatmapGrid, build_panel, colour_enabled

PANEL_NAMES = ("actual", "predicted", "error")


@dataclass(frozen=True)
class HeatmapChoice:
    """What the keys chose; `compute` turns it into `ftui heatmap`'s arguments."""

    heatmap: int = 0  # index into registry.heatmaps
    model: str | None = None  # None: actual values only
    scheme: str = "perfect"
    sets: str = "atlantis"
    raw: bool = False


@dataclass
class HeatmapComputed:
    choice: HeatmapChoice
    view: HeatmapView
    scores: list[ModelScore]
    note: str
    panels: list[tuple[Panel, Table, int]] = field(default_factory=list)  # built in the worker

    def same_numbers(self, other: HeatmapComputed) -> bool:
        """Nothing to redraw: same choice, same values in every panel, same seeds done."""
        mine, theirs = self.view.panels(), other.view.panels()
        return (
            self.choice == other.choice
            and self.note == other.note
            and self.view.matrix.seeds_done == other.view.matrix.seeds_done
            and self.view.matrix.stale_rows == other.view.matrix.stale_rows
            and len(mine) == len(theirs)
            and all(
                np.array_equal(a.values, b.values, equal_nan=True) for a, b in zip(mine, theirs, strict=True)
            )
        )


def compute(data: AppData, choice: HeatmapChoice) -> HeatmapComputed:
    """Everything the screen shows for `choice`, grids included (runs in a worker thread): the numbers come
    from the analysis package, as `ftui heatmap` and `ftui predict` get them."""
    heatmap = data.registry.heatmaps[choice.heatmap]
    browsed = browse_heatmap(
        data.registry,
        data.runs_dir,
        heatmap.name,
        model=choice.model,
        scheme=choice.scheme,
        sets=choice.sets,
        raw=choice.raw,
        results=data.store.run_results,
        progress=data.store.run_status,
    )
    computed = HeatmapComputed(choice, browsed.view, browsed.scores, browsed.note)
    colour = colour_enabled()
    computed.panels = [(p, *build_panel(computed.view, p, colour=colour)) for p in computed.view.panels()]
    return computed


def _fmt(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.3f}"


class HeatmapScreen(Screen[None]):
    DEFAULT_CSS = """
    HeatmapScreen #heatmap-status { width: 1fr; height: auto; padding: 0 1; background: $boost; }
    HeatmapScreen #heatmap-body { height: 1fr; }
    HeatmapScreen #heatmap-panels { height: auto; width: 1fr; }
    HeatmapScreen #heatmap-stack { height: auto; }
    HeatmapScreen #heatmap-scores { height: auto; max-height: 12; margin: 0 1; }
    HeatmapScreen #heatmap-note { color: $warning; padding: 0 1; height: auto; }
    """
    # The palette also lists each heatmap, model, normalisation and set by name (`palette_commands`).
    KEYS = (
        Key("escape", "app.pop_screen", "Back", "back to the runs"),
        Key("m", "next_heatmap", "Heatmap", "next heatmap of experiments.toml"),
        Key(
            "p",
            "next_model",
            "Predict",
            "prediction model: none, " + ", ".join(MODELS) + " (three panels: actual, predicted, error)",
        ),
        Key("n", "toggle_scheme", "Norm", "normalisation: perfect / improvement"),
        Key("s", "toggle_sets", "Sets", "atlantis / standard test sets"),
        Key(
            "w",
            "toggle_raw",
            "Raw",
            "raw metrics on / off",
            command="Raw metrics on/off",
            command_help="toggle raw metrics",
        ),
        Key(
            "x",
            "export",
            "Export",
            "export the current view (PNG, PDF, SVG, CSV)",
            command="Export heatmap",
            command_help="PNG, PDF, SVG or CSV",
        ),
    )
    BINDINGS = bindings(KEYS)

    def __init__(self, data: AppData, heatmap: int = 0) -> None:
        super().__init__()
        self.data = data
        scheme = data.registry.study.normalisation
        self.choice = HeatmapChoice(heatmap=heatmap, scheme=scheme if scheme in SCHEMES else "perfect")
        self.computed: HeatmapComputed | None = None
        self.exported: list[Path] = []

    def compose(self) -> ComposeResult:
        yield Label("computing…", id="heatmap-status", markup=False)
        with VerticalScroll(id="heatmap-body"):
            yield Label("", id="heatmap-note", markup=False)
            with Horizontal(id="heatmap-panels"):
                for name in PANEL_NAMES:
                    yield HeatmapGrid(id=f"panel-{name}")
            yield DataTable(id="heatmap-scores", cursor_type="row", show_cursor=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#heatmap-scores", DataTable).display = False
        self.recompute()
        self.set_interval(2.0, self._recompute_if_idle)  # new eval.json files appear while runs finish

    def on_resize(self) -> None:
        if self.computed is not None:
            self._layout_panels(self.computed)

    def recompute(self) -> None:
        self._compute(self.choice)

    def _recompute_if_idle(self) -> None:
        # The periodic re-read skips a tick while the previous computation is pending (a busy machine) rather
        # than cancel it: an exclusive worker cancels the one before, so a slow compute would never finish.
        if any(w.group == "heatmap" and not w.is_finished for w in self.workers):
            return
        self.recompute()

    @work(thread=True, exclusive=True, group="heatmap")
    def _compute(self, choice: HeatmapChoice) -> None:
        try:
            computed = compute(self.data, choice)
        except Exception as error:  # a broken eval.json never takes the app down: show why instead
            self.post_message(ActionFailed("heatmap", str(error)))
            return
        self.app.call_from_thread(self._show, computed)

    def on_action_failed(self, message: ActionFailed) -> None:
        self.notify(message.error, title=f"{message.action} failed", severity="error", timeout=10)

    def _show(self, computed: HeatmapComputed) -> None:
        if computed.choice != self.choice:
            return  # the user changed the choice meanwhile; a newer computation is on its way
        if self.computed is not None and computed.same_numbers(self.computed):
            return  # the periodic re-read found nothing new
        self.computed = computed
        view = computed.view
        heatmap = self.data.registry.heatmaps[computed.choice.heatmap]
        model = computed.choice.model or "none"
        source = "" if heatmap.predict_from else " (no source family)"
        count = len(self.data.registry.heatmaps)
        status = f"{heatmap.name} ({count} heatmaps) · predict: {model}{source} · {view.title()} · "
        status += view.missing_line()
        if view.stale_line():
            status += " · " + view.stale_line()
        with self.app.batch_update():
            self.query_one("#heatmap-status", Label).update(status)
            note = self.query_one("#heatmap-note", Label)
            note.update(computed.note)
            note.display = bool(computed.note)
            shown = {panel.name: (panel, table, width) for panel, table, width in computed.panels}
            for name in PANEL_NAMES:
                grid = self.query_one(f"#panel-{name}", HeatmapGrid)
                grid.display = name in shown
                if name in shown:
                    grid.show(*shown[name])
            self._layout_panels(computed)
            self._show_scores(computed.scores)

    def _layout_panels(self, computed: HeatmapComputed) -> None:
        """Side by side when every panel fits the width, else stacked."""
        needed = sum(width + 1 for _, _, width in computed.panels)
        layout = "horizontal" if needed <= self.size.width - 2 else "vertical"
        self.query_one("#heatmap-panels", Horizontal).styles.layout = layout

    def _show_scores(self, scores: list[ModelScore]) -> None:
        table = self.query_one("#heatmap-scores", DataTable)
        table.clear(columns=True)
        table.display = bool(scores)
        if not scores:
            return
        labels = ("model", "MAE", "RMSE", "R²", "MAE trained", "MAE transfer", "cells")
        rows = [
            (
                ("▶ " if s.model == self.choice.model else "  ") + s.model,
                _fmt(s.all.mae),
                _fmt(s.all.rmse),
                _fmt(s.all.r2),
                _fmt(s.trained.mae),
                _fmt(s.transfer.mae),
                str(s.all.n),
            )
            for s in scores
        ]
        # Explicit widths: auto widths of a table that was hidden when its columns were added stay too narrow.
        for index, label in enumerate(labels):
            table.add_column(label, width=max(len(label), *(len(row[index]) for row in rows)))
        table.add_rows(rows)

    # -- choices --------------------------------------------------------------------------------------
    def _choose(self, **changes: Any) -> None:
        self.choice = replace(self.choice, **changes)
        self.query_one("#heatmap-status", Label).update("computing…")
        self.recompute()

    def action_next_heatmap(self) -> None:
        self._choose(heatmap=(self.choice.heatmap + 1) % len(self.data.registry.heatmaps))

    def action_next_model(self) -> None:
        order: list[str | None] = [None, *MODELS]
        self._choose(model=order[(order.index(self.choice.model) + 1) % len(order)])

    def action_toggle_scheme(self) -> None:
        self._choose(scheme=SCHEMES[(SCHEMES.index(self.choice.scheme) + 1) % len(SCHEMES)])

    def action_toggle_sets(self) -> None:
        self._choose(sets=SET_NAMES[(SET_NAMES.index(self.choice.sets) + 1) % len(SET_NAMES)])

    def action_toggle_raw(self) -> None:
        self._choose(raw=not self.choice.raw)

    # -- export ---------------------------------------------------------------------------------------
    def action_export(self) -> None:
        if self.computed is None:
            self.notify("Still computing; try again in a moment.", severity="warning")
            return
        choice = self.computed.choice
        heatmap = self.data.registry.heatmaps[choice.heatmap]
        parts = [heatmap.name, "raw" if choice.raw else choice.scheme, choice.sets]
        if choice.model and not choice.raw:
            parts.append(choice.model)
        folder = Path(self.data.registry.path).parent

        def chosen(path: Path | None) -> None:
            if path is not None and self.computed is not None:
                self._export(self.computed.view, path)

        self.app.push_screen(ExportModal(folder, "-".join(parts)), chosen)

    @work(thread=True, group="export")
    def _export(self, view: HeatmapView, path: Path) -> None:
        from ftui.analysis.export import export

        try:
            written = export(view, path)
        except Exception as error:  # unwritable folder, bad suffix: a toast, not a crash
            self.post_message(ActionFailed("export", f"{path}: {error}"))
            return
        self.app.call_from_thread(self._exported, written)

    def _exported(self, path: Path) -> None:
        self.exported.append(path)
        self.notify(f"Wrote {path}", title="export")

    def palette_commands(self) -> list[Command]:
        choose = self._choose
        commands: list[Command] = []
        for index, heatmap in enumerate(self.data.registry.heatmaps):
            commands.append(
                (f"Heatmap: {heatmap.name}", f"family {heatmap.family}", partial(choose, heatmap=index))
            )
        commands.append(("Predict: none", "actual values only", partial(choose, model=None)))
        for model in MODELS:
            commands.append((f"Predict: {model}", "actual / predicted / error", partial(choose, model=model)))
        commands += [
            (
                "Normalisation: perfect",
                "0 = baseline, 1 = perfect",
                partial(choose, scheme="perfect", raw=False),
            ),
            (
                "Normalisation: improvement",
                "log-ratio scheme",
                partial(choose, scheme="improvement", raw=False),
            ),
            ("Sets: atlantis", "Atlantis test sets", partial(choose, sets="atlantis")),
            ("Sets: standard", "standard test sets", partial(choose, sets="standard")),
        ]
        return commands + palette(self, self.KEYS)
