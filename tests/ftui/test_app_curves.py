"""Loss curves with axes (run screen) and the compare screen, at 80x24: Pilot tests on fixture run folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from ftui.app import FtuiApp, make_app
from ftui.curves import Curve, ema, read_warmup_steps
from ftui.screens.compare_screen import CompareScreen
from ftui.screens.home_screen import HomeScreen
from ftui.widgets.loss_plot import LossPlot
from ftui.widgets.run_table import RunTable
from tests.ftui.app_fixtures import BASE_METRICS, build_states, make_study, open_run, write_eval, write_events

SIZE = (80, 24)
BASE_LOSSES = [round(4.0 - 0.3 * step, 4) for step in range(1, 9)]  # train_events(8, 8) of the fixture


async def settle(pilot: Pilot[int]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """The app fixture study, plus: base's checkpoint events and config.toml (warm-up 2), and single-3 with
    its own losses and an eval.json that differs from base's."""
    registry = make_study(tmp_path)
    build_states(registry)
    runs = tmp_path / "runs"
    write_events(runs / "base", [{"t": 1.0, "event": "checkpoint", "step": s} for s in (4, 8)])
    (runs / "base" / "config.toml").write_text("[train]\nwarmup_steps = 2\nlr = 1e-3\n")
    write_events(
        runs / "single-3",
        [{"t": s, "event": "step", "step": s * 2, "total_steps": 10, "loss": 5.0 / s} for s in range(1, 6)],
    )
    write_eval(runs / "single-3", {"distance": ("abs_error", 123.0, 45.0)}, name="single-3")
    return registry


async def test_run_screen_plots_the_real_steps_losses_checkpoints_and_warmup(study: Path) -> None:
    app = make_app(study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, "base")
        await pilot.press("5")
        await settle(pilot)
        plot = screen.query_one(LossPlot)
        assert plot.region.height > 10  # the curve gets most of an 80x24 screen
        loss, checkpoints = plot.drawn
        assert loss.steps == tuple(range(1, 9))
        assert loss.values == tuple(BASE_LOSSES)
        assert checkpoints.label == "checkpoint"
        assert checkpoints.steps == (4, 8)
        assert checkpoints.values == (BASE_LOSSES[3], BASE_LOSSES[7])  # on the curve, at those steps
        assert plot.curves[0].warmup_steps == 2
        caption = str(plot.query_one("#plot-caption").render())
        assert "warm-up ends 2" in caption and "2 ckpt" in caption
        # Plotext drew labelled axes into the widget.
        rendered = str(plot.query_one("PlotextPlot").render())
        assert "step" in rendered and "loss (log)" in rendered


async def test_smoothing_toggles_between_raw_and_ema(study: Path) -> None:
    app = make_app(study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, "base")
        plot = screen.query_one(LossPlot)
        await pilot.press("s")
        await settle(pilot)
        assert plot.smoothing
        assert plot.drawn[0].values == pytest.approx(ema(BASE_LOSSES))
        assert plot.drawn[0].values != tuple(BASE_LOSSES)
        await pilot.press("s")
        await settle(pilot)
        assert not plot.smoothing
        assert plot.drawn[0].values == tuple(BASE_LOSSES)


async def test_compare_opens_with_two_selected_runs(study: Path) -> None:
    app = make_app(study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        table = pilot.app.screen.query_one(RunTable)
        await settle(pilot)
        for key in ("base", "single-3"):
            table.move_cursor(row=table.keys.index(key))
            await pilot.press("space")
        await pilot.press("v")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, CompareScreen)
        assert screen.keys == ["base", "single-3"]
        header = str(screen.query_one("#compare-header").render())
        assert "base" in header and "single-3" in header
        plot = screen.query_one(LossPlot)
        base, single = plot.drawn  # no checkpoint marks when comparing
        assert base.steps == tuple(range(1, 9)) and base.values == tuple(BASE_LOSSES)
        assert single.steps == (2, 4, 6, 8, 10)
        assert single.values == pytest.approx([5.0 / s for s in range(1, 6)])
        assert base.marker != single.marker
        assert base.label.endswith("base") and single.label.endswith("single-3")
        # Results side by side, per task, atlantis then standard; a set one run lacks shows "·".
        rows = {(task, set_name): cells for task, set_name, _metric, cells in screen.result_rows()}
        assert rows[("distance", "atlantis")] == [f"{BASE_METRICS['distance'][1]:.4g}", "123"]
        assert rows[("distance", "standard")] == [f"{BASE_METRICS['distance'][2]:.4g}", "45"]
        assert rows[("compass", "atlantis")] == [f"{BASE_METRICS['compass'][1]:.4g}", "·"]
        grid = screen.query_one("#compare-results")
        assert grid.row_count == 2 * len(BASE_METRICS)  # type: ignore[attr-defined]
        await pilot.press("s")
        await settle(pilot)
        assert plot.drawn[1].values == pytest.approx(ema([5.0 / s for s in range(1, 6)]))
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(pilot.app.screen, HomeScreen)


async def test_compare_needs_two_runs(study: Path) -> None:
    app: FtuiApp = make_app(study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(pilot.app.screen, HomeScreen)


def test_curve_restart_replaces_the_repeated_steps() -> None:
    curve = Curve("x")
    curve.add_events([{"event": "step", "step": s, "loss": float(s)} for s in (1, 2, 3, 4)])
    curve.add_events([{"event": "step", "step": s, "loss": 10.0 + s} for s in (3, 4, 5)])  # resumed at 2
    assert curve.steps == [1, 2, 3, 4, 5]
    assert curve.losses == [1.0, 2.0, 13.0, 14.0, 15.0]
    curve.add_events([{"event": "step", "step": 1, "loss": 9.0}, {"event": "step", "step": 2, "loss": "x"}])
    assert curve.steps == [1] and curve.losses == [9.0]


def test_warmup_read_from_config(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[train]\nwarmup_steps = 50\n")
    assert read_warmup_steps(tmp_path / "config.toml") == 50
    (tmp_path / "config.toml").write_text("[train]\nwarmup_steps = 0\n")
    assert read_warmup_steps(tmp_path / "config.toml") is None
    (tmp_path / "config.toml").write_text("not toml [")
    assert read_warmup_steps(tmp_path / "config.toml") is None
    assert read_warmup_steps(tmp_path / "missing.toml") is None
