"""Pilot tests of the app on fixture runs folders (tests/ftui/app_fixtures.py): real store, real files."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from textual.message import Message
from textual.pilot import Pilot

from ftui.app import FtuiApp, make_app
from ftui.queue.store import Store
from ftui.screens.confirm_modal import ConfirmModal
from ftui.screens.help_screen import HelpScreen
from ftui.screens.home_screen import HomeScreen
from ftui.screens.registry_error_screen import RegistryErrorScreen
from ftui.screens.run_screen import RunScreen
from ftui.widgets.run_table import RunTable
from tests.ftui.app_fixtures import STATE_OF_RUN, make_study, settle, toasts

SIZE = (120, 30)


def table(app: FtuiApp) -> RunTable:
    return app.screen.query_one(RunTable)


def state_cell(app: FtuiApp, key: str) -> str:
    return str(table(app).get_cell(key, "state"))


async def move_to(pilot: Pilot[int], key: str) -> None:
    t = table(pilot.app)  # type: ignore[arg-type]
    t.move_cursor(row=t.keys.index(key))
    await pilot.pause()


def jobs(states_study: Path) -> dict[tuple[str, str], str]:
    store = Store(states_study.parent / "runs")
    found = {(j.run_key, j.action): j.state for j in store.jobs()}
    store.close()
    return found


async def test_home_shows_every_state(states_study: Path) -> None:
    app = make_app(states_study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        assert table(app).keys == list(STATE_OF_RUN)
        for key, state in STATE_OF_RUN.items():
            assert state in state_cell(app, key), (key, state_cell(app, key))
        # The running run shows its progress from events.jsonl: 4 of 8 steps, the last loss, a bar.
        assert str(table(app).get_cell("single-1", "steps")) == "4/8"
        assert str(table(app).get_cell("single-1", "loss")) == "2.800"
        assert "50%" in str(table(app).get_cell("single-1", "progress"))
        # The evaluated run shows a result summary; tasks are short codes.
        assert str(table(app).get_cell("base", "result")).startswith("D 400")
        assert str(table(app).get_cell("pair-1", "tasks")) == "D+A"


async def test_home_refresh_picks_up_new_progress(states_study: Path) -> None:
    from tests.ftui.app_fixtures import write_events

    app = make_app(states_study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        write_events(
            states_study.parent / "runs" / "single-1",
            [{"t": 1.0, "event": "step", "step": 6, "total_steps": 8, "loss": 1.25, "eta_s": 2.0}],
        )
        screen = app.screen
        assert isinstance(screen, HomeScreen)
        screen.refresh_runs()
        await settle(pilot)
        assert str(table(app).get_cell("single-1", "steps")) == "6/8"
        assert str(table(app).get_cell("single-1", "loss")) == "1.250"


async def test_filter_narrows_rows(states_study: Path) -> None:
    app = make_app(states_study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"pair")
        assert table(app).keys == ["pair-1", "pair-2", "pair-3"]
        await pilot.press(*" blocked")
        assert table(app).keys == ["pair-2"]
        await pilot.press("enter", "escape")
        assert table(app).keys == list(STATE_OF_RUN)
        await pilot.press("slash", *"single-?")
        assert table(app).keys == ["single-1", "single-2", "single-3"]


async def test_cancel_of_a_running_job_asks_first(states_study: Path) -> None:
    app = make_app(states_study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await move_to(pilot, "single-1")
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        store = Store(states_study.parent / "runs")
        assert not [j for j in store.jobs(["single-1"]) if j.cancel_requested]
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(pilot)
        assert [j for j in store.jobs(["single-1"]) if j.cancel_requested]
        store.close()


async def test_cancel_of_queued_jobs_needs_no_question(states_study: Path) -> None:
    app = make_app(states_study, start_worker=False)
    messages: list[object] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await move_to(pilot, "single-2")
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        assert jobs(states_study)[("single-2", "train")] == "cancelled"
        # Its dependant is blocked, and the table says so after the refresh the action triggers.
        assert jobs(states_study)[("pair-1", "train")] == "blocked"
        assert "blocked" in state_cell(app, "pair-1")
        assert any(type(m).__name__ == "JobsQueued" for m in messages)


async def test_retry_requeues_a_failed_run(states_study: Path) -> None:
    app = make_app(states_study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await move_to(pilot, "single-3")
        await pilot.press("r")
        await settle(pilot)
        assert jobs(states_study)[("single-3", "train")] == "queued"
        assert "queued" in state_cell(app, "single-3")


async def test_launch_queues_the_run_its_parent_and_evaluation(tmp_path: Path) -> None:
    registry = make_study(tmp_path)
    app = make_app(registry, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # Select two runs with space; launch applies to the selection.
        await move_to(pilot, "single-1")
        await pilot.press("space")
        await move_to(pilot, "pair-2")
        await pilot.press("space", "l")
        await settle(pilot)
    found = jobs(registry)
    assert found == {
        ("base", "train"): "queued",
        ("single-1", "train"): "waiting",
        ("single-1", "eval"): "waiting",
        ("pair-2", "train"): "waiting",
        ("pair-2", "eval"): "waiting",
    }
    for key in ("base", "single-1", "pair-2"):
        assert (tmp_path / "runs" / key / "config.toml").is_file()
    # Launching again queues nothing twice.
    app = make_app(registry, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await move_to(pilot, "single-1")
        await pilot.press("l")
        await settle(pilot)
    assert jobs(registry) == found


async def test_evaluate_queues_only_evaluation(tmp_path: Path) -> None:
    from tests.ftui.app_fixtures import write_final

    registry = make_study(tmp_path)
    write_final(tmp_path / "runs" / "single-2")
    app = make_app(registry, start_worker=False)
    messages: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        assert "trained" in state_cell(app, "single-2")
        await move_to(pilot, "single-2")
        await pilot.press("e")
        await settle(pilot)
        assert jobs(registry) == {("single-2", "eval"): "queued"}
        # An untrained run is not evaluated; the toast says why (same words as `ftui eval`).
        await move_to(pilot, "single-3")
        await pilot.press("e")
        await settle(pilot)
        assert jobs(registry) == {("single-2", "eval"): "queued"}
        assert any("single-3 has no checkpoints/final.pt" in text for text in toasts(messages))


async def test_read_only_refuses_actions(states_study: Path) -> None:
    before = jobs(states_study)
    app = make_app(states_study, read_only=True)
    messages: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await move_to(pilot, "single-3")
        await pilot.press("r", "l", "c")
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        assert any("Read-only" in text for text in toasts(messages))
    assert jobs(states_study) == before


async def test_invalid_registry_shows_the_problems(tmp_path: Path) -> None:
    bad = tmp_path / "experiments.toml"
    bad.write_text((make_study(tmp_path / "src")).read_text().replace('name = "base"', 'name = "bad/name"'))
    app = make_app(bad)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, RegistryErrorScreen)
        assert app.registry_problems and "bad/name" in app.registry_problems
        text = str(app.screen.query_one("#registry-error-text").render())
        assert "bad/name" in text
        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_missing_registry_shows_the_problem(tmp_path: Path) -> None:
    app = make_app(tmp_path / "nope.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, RegistryErrorScreen)
        assert "nope.toml" in (app.registry_problems or "")


async def test_an_unknown_profile_shows_the_problem(tmp_path: Path) -> None:
    app = make_app(make_study(tmp_path / "study"), profile="smok")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, RegistryErrorScreen)
        assert "unknown profile 'smok'" in (app.registry_problems or "")


async def test_help_and_command_palette_list_the_actions(states_study: Path) -> None:
    app = make_app(states_study, start_worker=False)
    messages: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        for word in ("launch", "cancel", "retry", "filter", "heatmaps"):
            assert word in text
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)
        names = [name for name, _, _ in app.screen.palette_commands()]
        assert {"Launch selected runs", "Cancel selected runs", "Open heatmaps"} <= set(names)
        await pilot.press("ctrl+p", *"retry sel", "enter")
        await settle(pilot)
        assert jobs(states_study)[("base", "train")] == "done"  # retry on a done run changes nothing ...
        assert any("Nothing to retry" in text for text in toasts(messages))  # ... and says so


async def test_run_screen_follows_appended_lines(states_study: Path) -> None:
    app = make_app(states_study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await move_to(pilot, "single-1")
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunScreen)
        log = screen.log_view
        assert list(log.log_widget.lines) == [f"single-1 line {i}" for i in range(10)]
        with open(states_study.parent / "runs" / "single-1" / "train.log", "a") as handle:
            handle.write("".join(f"new line {i}\n" for i in range(200)) + "partial, no newline yet")
        screen.tick()
        await settle(pilot)
        # The unfinished line shows as the live last line; it is not counted as a line yet.
        assert log.log_widget.lines[-2:] == ["new line 199", "partial, no newline yet"]
        assert log.total_lines == 210
        assert log.following and log.waiting == 0
        # Scroll up: following stops, and lines that arrive meanwhile are counted.
        log.log_widget.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        with open(states_study.parent / "runs" / "single-1" / "train.log", "a") as handle:
            handle.write(" done\n" + "".join(f"later {i}\n" for i in range(5)))
        screen.tick()
        await settle(pilot)
        assert log.log_widget.lines[-7:-5] == ["new line 199", "partial, no newline yet done"]
        assert log.log_widget.lines[-1] == "later 4"
        assert log.waiting == 6
        assert not log.following
        await pilot.press("end")
        await pilot.pause()
        assert log.waiting == 0 and log.following
        # Search scrolls to the match.
        await pilot.press("slash", *"new line 5", "enter")
        await pilot.pause()
        assert log._match_at is not None and "new line 5" in log.log_widget.lines[log._match_at]
        # The sparkline took the step events.
        assert screen.query_one("LossSparkline").losses == [3.7, 3.4, 3.1, 2.8]  # type: ignore[attr-defined]
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


async def test_run_screen_shows_config_checkpoints_and_results(states_study: Path) -> None:
    (states_study.parent / "runs" / "base" / "config.toml").write_text(
        'kind = "pretrain"\n[train]\nlr = 0.001\n'
    )
    app = make_app(states_study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await move_to(pilot, "base")
        await pilot.press("enter")
        await settle(pilot)
        from textual.widgets import DataTable, Static, TabbedContent

        screen = app.screen
        checkpoints = screen.query_one("#run-checkpoints", DataTable)
        assert [checkpoints.get_row_at(i)[0] for i in range(checkpoints.row_count)] == [
            "final.pt",
            "step-00000004.pt",
        ]
        results = screen.query_one("#run-results", DataTable)
        assert results.row_count == 6
        assert results.get_row_at(0)[:3] == ["atlantis/distance", "abs_error", "400"]
        await pilot.press("4")
        await pilot.pause()
        tabs = screen.query_one(TabbedContent)
        assert tabs.active == "tab-results"
        await pilot.press("2")  # the config tab shows the run's config.toml
        await pilot.pause()
        assert tabs.active == "tab-config"
        console = Console(width=100, color_system=None, record=True)
        with console.capture() as capture:
            console.print(screen.query_one("#run-config", Static).content)
        assert "lr = 0.001" in capture.get() and 'kind = "pretrain"' in capture.get()
