"""Snapshots of the home, run and heatmap screens at 80x24 and 160x50 on fixed fixtures.

Update after an intended change of the look: `pytest tests/ftui/test_app_snapshots.py --snapshot-update`,
then look at the SVGs in __snapshots__/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from ftui.app import make_app
from tests.ftui.app_fixtures import settle

SIZES = [(80, 24), (160, 50)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_home(
    snap_compare: Any, states_study: Path, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(states_study.parent)  # the header names the registry and runs folder relative to here

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        pilot.app.screen.query_one("RunTable").move_cursor(row=1)
        await pilot.press("space")
        await settle(pilot)

    assert snap_compare(make_app(states_study, start_worker=False), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_run(snap_compare: Any, states_study: Path, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        pilot.app.screen.query_one("RunTable").move_cursor(row=1)
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(make_app(states_study, start_worker=False), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_heatmap(snap_compare: Any, results_study: Path, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("h")
        await settle(pilot)
        await pilot.press("m")  # the pair heatmap
        await settle(pilot)
        await pilot.press("p")  # predicted by max: three panels and the scores
        await settle(pilot)

    assert snap_compare(
        make_app(results_study, start_worker=False), terminal_size=size, run_before=run_before
    )
