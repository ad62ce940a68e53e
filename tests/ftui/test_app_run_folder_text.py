"""Bytes from a run folder in the app (issue 13, faults 3 and 4): a log with escape sequences, control bytes
and invalid UTF-8 cannot drive the terminal, and carriage-return progress bars show as a terminal shows them.

What reaches the terminal is checked on the frame the app would write: the compositor's full update rendered
to the exact string Textual sends to the terminal driver (headless tests write nothing, so the string is
rendered here the way `App._display` renders it).
"""

from __future__ import annotations

import re
from pathlib import Path

from ftui.app import FtuiApp, make_app
from ftui.queue.store import Store
from ftui.screens.home_screen import HomeScreen
from tests.data.make_eval_fixtures import write_eval_json
from tests.ftui.app_fixtures import open_run, settle

SIZE = (100, 30)
# The train.log: set the window title, clear the screen, home the cursor.
HOSTILE = b"\x1b]0;TITLE\x1b\\" + b"\x1b[2J\x1b[H"
# What Textual itself writes: SGR styles and absolute cursor moves (`ESC [ row ; col H`), nothing else.
TEXTUAL_OWN = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\d+;\d+H")
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_output(app: FtuiApp) -> str:
    """The string Textual writes to the terminal for a full redraw of the current screen."""
    return app.screen._compositor.render_full_update().render_segments(app.console)


def assert_nothing_escapes(app: FtuiApp, *hidden: str) -> None:
    output = terminal_output(app)
    foreign = TEXTUAL_OWN.sub("", output)
    assert "\x1b" not in foreign, repr(foreign[foreign.index("\x1b") - 20 :][:80])
    assert not CONTROL.search(foreign.replace("\n", "").replace("\r", "")), repr(CONTROL.findall(foreign))
    for text in hidden:
        assert text not in output, text
    # And every cell of every line holds printable text only.
    for strip in app.screen._compositor.render_strips():
        for segment in strip:
            assert not CONTROL.search(segment.text), repr(segment.text)


async def test_a_log_that_sets_the_title_and_clears_the_screen_is_shown_as_text(states_study: Path) -> None:
    log = states_study.parent / "runs" / "single-1" / "train.log"
    log.write_bytes(
        b"step 1 loss 3.2\n"
        + HOSTILE
        + b"after the clear\n"
        + b"\x1b[1;31mred\x1b[0m and plain\n"  # colour: dropped, the text stays
        + b"bell\x07 del\x7f c1 \xc2\x9b2J 8-bit \x9b2J bad utf-8 \xff\xfe end\n"
        + b"dcs \x1bPq#0;2;0;0;0\x1b\\ apc \x1b_hidden\x1b\\ "
        + b"osc8 \x1b]8;;http://x\x07link\x1b]8;;\x07 reset \x1bc.\n"
        + b"unfinished \x1b]0;ANOTHER TITLE"  # a live line that is an unterminated OSC
    )
    app = make_app(states_study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, "single-1")
        lines = list(screen.log_view.log_widget.lines)
        assert lines == [
            "step 1 loss 3.2",
            "after the clear",
            "red and plain",
            "bell\ufffd del\ufffd c1  8-bit \ufffd2J bad utf-8 \ufffd\ufffd end",
            "dcs  apc  osc8 link reset .",
            "unfinished ",
        ]
        assert_nothing_escapes(app, "TITLE", "hidden")


async def test_reasons_names_and_results_from_the_run_folder_are_cleaned(states_study: Path) -> None:
    runs = states_study.parent / "runs"
    store = Store(runs)
    job = next(j for j in store.jobs() if j.run_key == "single-3")
    # A reason as a Slurm message or an engine error could carry it (the store keeps any text).
    store.finish(job.id, "failed", "slurm says \x1b]0;TITLE\x07\x1b[2Jboom [bold]x[/bold]", exit_code=1)
    store.close()
    write_eval_json(
        runs / "base",
        "base",
        7,
        {"atlantis/distance\x1b[2J\x1b]0;TITLE\x07": ("distance", "abs_error", 1.0)},
    )
    (runs / "base" / "checkpoints" / "evil\x1b]0;TITLE\x07.pt").write_bytes(b"x")
    app = make_app(states_study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        assert_nothing_escapes(app, "TITLE")
        screen = await open_run(pilot, "single-3")
        header = str(screen.query_one("#run-header").render())
        assert "slurm says boom [bold]x[/bold]" in header
        assert_nothing_escapes(app, "TITLE")
        await pilot.press("escape")
        screen = await open_run(pilot, "base")
        for tab in ("3", "4"):
            await pilot.press(tab)
            await pilot.pause()
            assert_nothing_escapes(app, "TITLE")


def tqdm_bar(updates: int, label: str = "") -> bytes:
    """A tqdm-style bar: every update rewrites the line after a carriage return; a newline at the end."""
    redraws = (
        f"\r{label}{i * 100 // updates:3d}%|{'#' * (i * 10 // updates):<10}| {i}/{updates}"
        for i in range(updates + 1)
    )
    return "".join(redraws).encode() + b"\n"


async def test_a_progress_bar_is_one_line_and_its_live_state_is_shown(states_study: Path) -> None:
    log = states_study.parent / "runs" / "single-1" / "train.log"
    lines = [f"line {i}" for i in range(10)]
    # The log: 11 lines, one of them a bar of 2,000 updates. And a Windows line end.
    log.write_bytes(
        "\n".join(lines[:5]).encode() + b"\n" + tqdm_bar(2000) + "\r\n".join(lines[5:]).encode() + b"\r\n"
    )
    app = make_app(states_study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, "single-1")
        view = screen.log_view
        shown = list(view.log_widget.lines)
        assert shown == lines[:5] + ["100%|##########| 2000/2000"] + lines[5:]
        status = str(screen.query_one("#log-status").render())
        assert status.startswith("11 lines")
        # A bar still running: its newest state is the live last line, replaced (not appended) as it moves.
        with open(log, "ab") as handle:
            handle.write(b"\r  0%|          | 0/50")
        screen.tick()
        await settle(pilot)
        assert list(view.log_widget.lines) == shown + ["  0%|          | 0/50"]
        with open(log, "ab") as handle:
            handle.write(b"\r 10%|#         | 5/50\r 20%|##        | 10/50")
        screen.tick()
        await settle(pilot)
        assert list(view.log_widget.lines) == shown + [" 20%|##        | 10/50"]
        assert view.total_lines == 11  # the live line is no line of the log yet
        with open(log, "ab") as handle:
            handle.write(b"\r100%|##########| 50/50\nnext line\n")
        screen.tick()
        await settle(pilot)
        assert list(view.log_widget.lines) == shown + ["100%|##########| 50/50", "next line"]
        assert view.total_lines == 13
        assert_nothing_escapes(app)


async def test_ten_bars_keep_every_real_line(states_study: Path) -> None:
    log = states_study.parent / "runs" / "single-1" / "train.log"
    # Ten bars of 2,000 updates: 20,000 redraws, which used to push the real lines past the 20,000-line cap.
    log.write_bytes(b"".join(f"epoch {e}\n".encode() + tqdm_bar(2000, f"epoch {e} ") for e in range(10)))
    app = make_app(states_study, start_worker=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run(pilot, "single-1")
        shown = list(screen.log_view.log_widget.lines)
        assert len(shown) == 20
        assert shown[:2] == ["epoch 0", "epoch 0 100%|##########| 2000/2000"]
