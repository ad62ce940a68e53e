"""Each screen's keys come from one table (ftui/screens/keys.py): its bindings, its `?` help and its palette
commands are built from it and run the same actions."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.actions import parse
from textual.app import App
from textual.screen import Screen

from ftui.app import make_app
from ftui.screens.heatmap_screen import HeatmapScreen
from ftui.screens.help_screen import HelpScreen
from ftui.screens.home_screen import HomeScreen
from ftui.screens.run_screen import RunScreen
from tests.ftui.app_fixtures import settle

SCREENS: tuple[type[Screen[None]], ...] = (HomeScreen, RunScreen, HeatmapScreen)


@pytest.mark.parametrize("screen", SCREENS, ids=lambda s: s.__name__)
def test_bindings_are_the_key_table_and_every_action_exists(screen: type[Screen[None]]) -> None:
    table = screen.KEYS  # type: ignore[attr-defined]
    bound = [(b.key, b.action, b.description, b.show) for b in screen.BINDINGS]  # type: ignore[union-attr]
    assert bound == [(k.key, k.action, k.label, k.footer) for k in table if k.action is not None]
    for key in table:
        if key.action is not None:
            namespace, name, _ = parse(key.action)
            owner = App if namespace == "app" else screen
            assert callable(getattr(owner, f"action_{name}", None)), key
        # A key shown in the footer is explained in the help.
        assert key.help or not key.footer or key.action is None, key


async def test_help_and_palette_of_the_home_screen_come_from_its_table(results_study: Path) -> None:
    app = make_app(results_study, start_worker=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        home = app.screen
        assert isinstance(home, HomeScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        for key in HomeScreen.KEYS:
            if key.help:
                assert f"{key.display:<14} {key.help}" in text
        await pilot.press("escape")
        commands = {name: (help_text, run) for name, help_text, run in home.palette_commands()}
        assert commands["Open heatmaps"][0] == "heatmap screen (h)"
        commands["Open heatmaps"][1]()
        await settle(pilot)
        assert isinstance(app.screen, HeatmapScreen)
