"""Benchmarks of the Textual app (headless `run_test`), printed as one table.

1. The home screen at each size of `--runs` (500 and 5,000 by default: the shipped study at round(N/71)
   seeds, every run with an events.jsonl and half of them evaluated), each figure beside its ratio to a bare
   Textual app's first frame measured in the same process:
   - first frame (every run listed, from the registry) and every state shown (the run folders read);
   - a refresh tick with nothing changed: the event loop's time in the home screen's handlers for that tick
     (`tick_handlers_ms`), the longest stall of the event loop while the refresh worker reads in its thread
     (`tick_loop_stall_ms`, a 1 ms probe; the read holds the GIL) and the worker's read itself
     (`tick_read_ms`, off the event loop);
   - filter keys (typing `/ft2-1`, `/done`, `/seed-3` and erasing them) and scroll keys (down, up, pgdn,
     pgup): key sent -> the table changed and the next frame drawn, 50th and 95th percentile.
2. Key-press latency (press -> handled, the tab switched) on the run screen while that run's train.log grows
   by 5,000 lines/s, 95th percentile (at the smallest size only).
3. The 21x7 three-panel heatmap (ft2 predicted from ft1 by max): build (the worker's part: matrices,
   prediction, scores of every model, the three Rich tables), draw (the three tables rendered at 260 columns),
   and in the app a key press (next model) to the new panels shown.

    .venv/bin/python bench/app_bench.py [--runs 500 5000] [--repeat 3] [--home-only] [--clock cpu]

Targets at 5,000 runs (issue 18): first frame <= 0.25 s, every state <= 1 s, tick <= 20 ms of the event
loop, filter and scroll keys p95 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import Label  # noqa: E402

from ftui.app import make_app  # noqa: E402
from ftui.app_data import AppData  # noqa: E402
from ftui.screens.heatmap_screen import HeatmapScreen  # noqa: E402
from ftui.screens.home_screen import HomeScreen  # noqa: E402

STUDY_EXPERIMENTS = 71  # the shipped experiments.toml, one seed
# The clock of the home figures: wall time by default. `--clock cpu`, for a machine shared with other work
# (where a niced bench waits for a core most of the time), reads CPU time instead: the event loop thread's for
# the first frame, the keys and the tick's handlers, the reading thread's for the read, the whole process's
# for "every state shown" (the folders are read in a thread).
CLOCK = time.perf_counter
THREAD_CLOCK = time.perf_counter
PROCESS_CLOCK = time.perf_counter


class BareApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Label("bare")


def make_big_study(folder: Path, runs: int = 500) -> Path:
    """The shipped experiments.toml at round(runs / 71) seeds (500 -> 497 runs, 5,000 -> 4,970), with
    progress and results in the run folders."""
    from ftui.registry import load_registry
    from tests.ftui.app_fixtures import age_files, train_events, write_eval, write_events

    count = max(1, round(runs / STUDY_EXPERIMENTS))
    seeds = [42, *(seed for seed in range(1, count + 1) if seed != 42)][:count]
    text = (REPO / "experiments.toml").read_text()
    text = text.replace("seeds = [42]", f"seeds = {seeds}", 1)
    folder.mkdir(parents=True)
    registry_path = folder / "experiments.toml"
    registry_path.write_text(text)
    registry = load_registry(registry_path)
    runs_dir = registry.runs_dir(None)
    for index, run in enumerate(registry.runs()):
        write_events(runs_dir / run.rel_dir, train_events(50, 100))
        if index % 2 == 0:
            write_eval(
                runs_dir / run.rel_dir, {"distance": ("abs_error", 300.0, 50.0)}, name=run.experiment.name
            )
    # Written a minute ago, as a user's finished runs were: files modified within 2 s of a read are read
    # again by the next app (ftui/run_cache.py RACY_NS), which made the second open as slow as a cold one.
    age_files(runs_dir)
    return registry_path


FRAMES: list[tuple[float, str]] = []
# The key being timed (`send_key`): its effect, checked at each frame, and the time of the first frame
# that shows it.
KEY_EFFECT: list[Any] = []
KEY_SHOWN_AT: list[float] = []
_display = App._display


def _record_display(self: App[Any], screen: Any, renderable: Any) -> None:
    # A frame: the compositor has rendered the screen (headless only skips writing it to a terminal).
    if renderable is not None:
        now = CLOCK()
        FRAMES.append((now, type(screen).__name__))
        if KEY_EFFECT and not KEY_SHOWN_AT and KEY_EFFECT[0]():
            KEY_SHOWN_AT.append(now)
    _display(self, screen, renderable)


App._display = _record_display  # type: ignore[method-assign]


def first_frame_after(start: float, screen_name: str) -> float:
    return min(t for t, name in FRAMES if name == screen_name and t >= start) - start


async def first_frame_bare() -> float:
    FRAMES.clear()
    start = CLOCK()
    async with BareApp().run_test(size=(160, 50)) as pilot:
        await pilot.pause()
    return first_frame_after(start, "Screen")


async def first_frame_ftui(registry: Path) -> tuple[float, float, int]:
    """(first frame of the home screen with every run listed, every state filled in, rows shown)."""
    FRAMES.clear()
    start, process_start = CLOCK(), PROCESS_CLOCK()
    app = make_app(registry, start_worker=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("RunTable")
        rows = len(table.keys)  # type: ignore[attr-defined]
        await app.workers.wait_for_complete()
        await pilot.pause()
        filled = PROCESS_CLOCK() - process_start
        assert "reading" not in str(table.get_cell(table.keys[0], "state"))  # type: ignore[attr-defined]
    return first_frame_after(start, "HomeScreen"), filled, rows


HANDLER_TIMES: list[tuple[float, float]] = []  # (end, seconds) of each home-screen handler call


def _timed(method: Any) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = THREAD_CLOCK()
        try:
            return method(*args, **kwargs)
        finally:
            HANDLER_TIMES.append((time.perf_counter(), THREAD_CLOCK() - start))

    return timed


# What a refresh tick runs on the event loop: the tick itself (it starts the read worker) and the handlers of
# the two messages the worker posts. Patched on the class, before any app exists, so Textual dispatches to
# the timed versions.
for _name in ("refresh_runs", "on_runs_refreshed", "on_home_screen_worker_checked"):
    setattr(HomeScreen, _name, _timed(getattr(HomeScreen, _name)))
READ_TIMES: list[float] = []
_rows = AppData.rows


def _timed_rows(self: AppData, *args: Any) -> Any:
    start = THREAD_CLOCK()
    try:
        return _rows(self, *args)
    finally:
        READ_TIMES.append(THREAD_CLOCK() - start)


AppData.rows = _timed_rows  # type: ignore[method-assign]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def send_key(app: App[Any], key: str, done: Any) -> float:
    """Send `key` as the terminal would; seconds until the first frame drawn once `done()` holds.

    Checked at each frame (`_record_display`), not by a poller: a poller wakes only when the event loop is
    free, which can be after the frame that showed the change, and then it counted the next frame instead
    (some 30 ms later: the filter keys' p95 held such waits)."""
    from textual import events

    driver = app._driver
    assert driver is not None
    character = {"minus": "-", "space": " "}.get(key, key if len(key) == 1 else None)
    KEY_EFFECT[:] = [done]
    KEY_SHOWN_AT.clear()
    start, deadline = CLOCK(), time.perf_counter() + 10
    event = events.Key(key, character)
    event.set_sender(app)
    driver.send_message(event)
    try:
        while not KEY_SHOWN_AT:
            await asyncio.sleep(0.0005)
            if time.perf_counter() > deadline:
                raise TimeoutError(f"key {key!r} had no effect shown in 10 s")
    finally:
        KEY_EFFECT.clear()
    return KEY_SHOWN_AT[0] - start


async def loop_probe(stalls: list[float], stop: asyncio.Event) -> None:
    """Sleep 1 ms at a time; record how much later than that each wake-up came (the loop was busy). With
    `--clock cpu`: the event loop thread's CPU time between wake-ups instead."""
    cpu = CLOCK is not time.perf_counter
    clock = CLOCK
    while not stop.is_set():
        start = clock()
        await asyncio.sleep(0.001)
        stalls.append(clock() - start - (0.0 if cpu else 0.001))


async def home_figures(registry: Path, ticks: int = 5) -> dict[str, float]:
    """Refresh ticks with nothing changed, then filter and scroll keys, on one open home screen."""
    app = make_app(registry, start_worker=False)
    out: dict[str, float] = {}
    async with app.run_test(size=(160, 50)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HomeScreen)
        table = screen.table
        handler_ms, stall_ms, read_ms = [], [], []
        for _ in range(ticks):
            await app.workers.wait_for_complete()
            await pilot.pause()
            HANDLER_TIMES.clear()
            READ_TIMES.clear()
            stalls: list[float] = []
            stop = asyncio.Event()
            probe = asyncio.create_task(loop_probe(stalls, stop))
            await asyncio.sleep(0.01)
            start = time.perf_counter()
            refreshes = screen.refreshes
            screen.refresh_runs()
            while screen.refreshes == refreshes:  # the worker read every run and its message was handled
                await asyncio.sleep(0.001)
            await app.workers.wait_for_complete()
            await pilot.pause()
            stop.set()
            await probe
            handler_ms.append(sum(s for end, s in HANDLER_TIMES if end >= start) * 1000)
            stall_ms.append(max(stalls) * 1000)
            read_ms.append(READ_TIMES[-1] * 1000 if READ_TIMES else float("nan"))
        out["tick_handlers_ms"] = statistics.median(handler_ms)
        out["tick_loop_stall_ms"] = statistics.median(stall_ms)
        out["tick_read_ms"] = statistics.median(read_ms)

        filter_latencies = []
        await pilot.press("slash")
        await pilot.pause()
        for word in ("ft2-1", "done", "seed-3"):
            typed = ""
            keys = [("minus" if ch == "-" else ch) for ch in word] + ["backspace"] * len(word)
            for key in keys:
                typed = typed[:-1] if key == "backspace" else typed + ("-" if key == "minus" else key)
                expected = typed

                def filtered(expected: str = expected) -> bool:
                    return screen.filter_text == expected

                filter_latencies.append(await send_key(app, key, filtered))
                await asyncio.sleep(0.02)  # a fast typist
        await pilot.press("escape")
        await pilot.pause()
        assert len(table.keys) == len(screen.all_rows)
        scroll_latencies = []
        for key, count in (("down", 20), ("pagedown", 10), ("up", 20), ("pageup", 10)):
            for _ in range(count):
                before = table.cursor_row

                def moved(before: int = before) -> bool:
                    return table.cursor_row != before

                scroll_latencies.append(await send_key(app, key, moved))
                await asyncio.sleep(0.02)
        out["filter_key_p50_ms"] = percentile(filter_latencies, 0.5) * 1000
        out["filter_key_p95_ms"] = percentile(filter_latencies, 0.95) * 1000
        out["scroll_key_p50_ms"] = percentile(scroll_latencies, 0.5) * 1000
        out["scroll_key_p95_ms"] = percentile(scroll_latencies, 0.95) * 1000
    return out


WRITER = """
import sys, time
path, rate = sys.argv[1], int(sys.argv[2])
n = 0
with open(path, "a") as handle:
    while True:
        tick = time.perf_counter()
        lines = [f"step {n + i} loss 1.234 lr 3e-4 tokens/s 123456\\n" for i in range(rate // 100)]
        handle.write("".join(lines))
        handle.flush()
        n += rate // 100
        time.sleep(max(0.0, 0.01 - (time.perf_counter() - tick)))
"""


async def key_latency(registry: Path, presses: int = 200) -> tuple[list[float], int]:
    """Key event sent -> its action done (the tab switched), timed by polling every 0.5 ms. The log writer
    is a separate process, as the engine is (in-process it would steal the app's GIL)."""
    import subprocess

    from textual import events
    from textual.widgets import TabbedContent

    from ftui.registry import load_registry

    run = load_registry(registry).runs()[0]
    log = registry.parent / "runs" / run.rel_dir / "train.log"
    app = make_app(registry, start_worker=False)
    latencies: list[float] = []
    async with app.run_test(size=(160, 50)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), "5000"])
        try:
            await asyncio.sleep(1.0)
            tabs = app.screen.query_one(TabbedContent)
            driver = app._driver
            assert driver is not None
            for i in range(presses):
                key, tab = ("2", "tab-config") if i % 2 == 0 else ("1", "tab-log")
                start = time.perf_counter()
                event = events.Key(key, key)
                event.set_sender(app)
                driver.send_message(event)
                while tabs.active != tab:
                    await asyncio.sleep(0.0005)
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(0.02)  # a fast typist, not a flood
        finally:
            writer.terminate()
            writer.wait()
        shown = app.screen.log_view.total_lines  # type: ignore[attr-defined]
    return latencies, shown


async def heatmap_times(folder: Path) -> dict[str, float]:
    from rich.console import Console
    from textual import events

    from ftui.analysis.render import render_panel
    from ftui.app_data import AppData
    from ftui.registry import load_registry
    from ftui.screens.heatmap_screen import HeatmapChoice, compute
    from tests.data.make_eval_fixtures import make_fixtures

    folder.mkdir(parents=True)
    registry_path = folder / "experiments.toml"
    registry_path.write_text((REPO / "experiments.toml").read_text())
    make_fixtures(registry_path, folder / "runs")
    registry = load_registry(registry_path)
    data = AppData(registry, registry.runs_dir(None), start_worker=False)
    index = [h.name for h in registry.heatmaps].index("ft2")
    choice = HeatmapChoice(heatmap=index, model="max")
    builds, draws = [], []
    for _ in range(10):
        start = time.perf_counter()
        computed = compute(data, choice)
        builds.append(time.perf_counter() - start)
        start = time.perf_counter()
        console = Console(width=260, file=open("/dev/null", "w"), color_system="truecolor")  # noqa: SIM115
        for panel in computed.view.panels():
            console.print(render_panel(computed.view, panel))
        draws.append(time.perf_counter() - start)
    assert computed.view.matrix.values.shape == (21, 7)
    app = make_app(registry_path, start_worker=False)
    in_app = []
    async with app.run_test(size=(260, 60)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.push_screen(HeatmapScreen(app.data, heatmap=index))
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HeatmapScreen)
        driver = app._driver
        assert driver is not None
        for _ in range(8):  # none -> max -> mean ...: each press recomputes (worker) and redraws three panels
            before = screen.choice
            start = time.perf_counter()
            event = events.Key("p", "p")
            event.set_sender(app)
            driver.send_message(event)
            while (
                screen.computed is None
                or screen.computed.choice == before
                or screen.computed.choice != screen.choice
            ):
                await asyncio.sleep(0.0005)
            in_app.append(time.perf_counter() - start)
    return {
        "build_ms": statistics.median(builds) * 1000,
        "draw_ms": statistics.median(draws) * 1000,
        "key_to_updated_ms": statistics.median(in_app) * 1000,
    }


TARGETS_5000 = {  # issue 18, at 5,000 runs
    "first_frame_s": 0.25,
    "states_filled_s": 1.0,
    "tick_handlers_ms": 20.0,
    "filter_key_p95_ms": 50.0,
    "scroll_key_p95_ms": 50.0,
}


async def main(sizes: list[int], repeat: int, run_screen: bool, heatmap: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bare = [await first_frame_bare() for _ in range(repeat)]
        results["first_frame_bare_s"] = statistics.median(bare)
        first_registry = None
        for size in sizes:
            registry = make_big_study(Path(tmp) / f"runs{size}", size)
            first_registry = first_registry or registry
            ftui = [await first_frame_ftui(registry) for _ in range(repeat)]
            figures: dict[str, Any] = {"runs_shown": ftui[0][2]}
            figures["first_frame_s"] = statistics.median(t for t, _, _ in ftui)
            figures["states_filled_s"] = statistics.median(t for _, t, _ in ftui)
            # The first open of a fresh study has no cache file yet (runs/.ftui-cache-app.json): every run
            # folder is parsed. The later opens, as a user's every next one, read only what changed.
            figures["states_filled_cold_s"] = ftui[0][1]
            figures.update(await home_figures(registry))
            results[size] = figures
        if run_screen and first_registry is not None:
            latencies, lines = await key_latency(first_registry)
            latencies.sort()
            results["run_screen_key_p50_ms"] = latencies[len(latencies) // 2] * 1000
            results["run_screen_key_p95_ms"] = latencies[int(len(latencies) * 0.95)] * 1000
            results["run_screen_key_max_ms"] = latencies[-1] * 1000
            results["log_lines_shown_during_test"] = lines
        if heatmap:
            results.update(await heatmap_times(Path(tmp) / "heat"))
    return results


def print_table(results: dict[str, Any], sizes: list[int]) -> None:
    bare = results["first_frame_bare_s"]
    print(f"bare Textual app, first frame: {bare:.3f} s (the ratios below are to this)")
    header = f"{'home screen':22}" + "".join(f"{f'{n} runs':>22}" for n in sizes) + f"{'target at 5,000':>18}"
    print(header)
    for name in results[sizes[0]]:
        if name == "runs_shown":
            cells = "".join(f"{results[n][name]:>22}" for n in sizes)
        else:
            unit = 1.0 if name.endswith("_s") else 0.001
            cells = "".join(
                f"{results[n][name]:>12.3f} ({results[n][name] * unit / bare:5.1f}x)" for n in sizes
            )
        target = TARGETS_5000.get(name)
        print(f"{name:22}{cells}{f'<= {target:g}' if target else '':>18}")
    for key, value in results.items():
        if not isinstance(key, int):
            print(f"{key:32} {value:.3f}" if isinstance(value, float) else f"{key:32} {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[500, 5000], help="sizes of the study")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-run-screen", action="store_true", help="no run-screen key latency")
    parser.add_argument("--home-only", action="store_true", help="only the home screen figures (1.)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="see CLOCK")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.clock == "cpu":
        CLOCK, THREAD_CLOCK, PROCESS_CLOCK = time.thread_time, time.thread_time, time.process_time
    print(f"clock: {args.clock}", flush=True)
    run_screen = not (args.skip_run_screen or args.home_only)
    out = asyncio.run(main(args.runs, args.repeat, run_screen, not args.home_only))
    if args.json:
        print(json.dumps({str(k): v for k, v in out.items()}, indent=1))
    else:
        print_table(out, args.runs)
