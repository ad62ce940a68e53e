"""Benchmarks of the Textual app (headless `run_test`), printed as one table.

1. First full frame with ~500 runs (the shipped study at 7 seeds: 497 runs, every run with an events.jsonl
   and half of them evaluated), as a ratio to a bare Textual app's first frame measured in the same process.
2. Key-press latency (press -> handled, the tab switched) on the run screen while that run's train.log grows
   by 5,000 lines/s, 95th percentile.
3. The 21x7 three-panel heatmap (ft2 predicted from ft1 by max): build (the worker's part: matrices,
   prediction, scores of every model, the three Rich tables), draw (the three tables rendered at 260 columns),
   and in the app a key press (next model) to the new panels shown.

    .venv/bin/python bench/app_bench.py [--repeat 3]
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
from ftui.screens.heatmap_screen import HeatmapScreen  # noqa: E402

SEEDS = [42, 1, 2, 3, 4, 5, 6]


class BareApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Label("bare")


def make_big_study(folder: Path) -> Path:
    """The shipped experiments.toml at 7 seeds (497 runs), with progress and results in the run folders."""
    from ftui.registry import load_registry
    from tests.ftui.app_fixtures import train_events, write_eval, write_events

    text = (REPO / "experiments.toml").read_text()
    text = text.replace("seeds = [42]", f"seeds = {SEEDS}", 1)
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
    return registry_path


FRAMES: list[tuple[float, str]] = []
_display = App._display


def _record_display(self: App[Any], screen: Any, renderable: Any) -> None:
    # A frame: the compositor has rendered the screen (headless only skips writing it to a terminal).
    if renderable is not None:
        FRAMES.append((time.perf_counter(), type(screen).__name__))
    _display(self, screen, renderable)


App._display = _record_display  # type: ignore[method-assign]


def first_frame_after(start: float, screen_name: str) -> float:
    return min(t for t, name in FRAMES if name == screen_name and t >= start) - start


async def first_frame_bare() -> float:
    FRAMES.clear()
    start = time.perf_counter()
    async with BareApp().run_test(size=(160, 50)) as pilot:
        await pilot.pause()
    return first_frame_after(start, "Screen")


async def first_frame_ftui(registry: Path) -> tuple[float, float, int]:
    """(first frame of the home screen with every run listed, every state filled in, rows shown)."""
    FRAMES.clear()
    start = time.perf_counter()
    app = make_app(registry, start_worker=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("RunTable")
        rows = len(table.keys)  # type: ignore[attr-defined]
        await app.workers.wait_for_complete()
        await pilot.pause()
        filled = time.perf_counter() - start
        assert "reading" not in str(table.get_cell(table.keys[0], "state"))  # type: ignore[attr-defined]
    return first_frame_after(start, "HomeScreen"), filled, rows


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


async def main(repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        registry = make_big_study(Path(tmp) / "big")
        bare = [await first_frame_bare() for _ in range(repeat)]
        ftui = [await first_frame_ftui(registry) for _ in range(repeat)]
        results["first_frame_bare_s"] = statistics.median(bare)
        results["first_frame_500_runs_s"] = statistics.median(t for t, _, _ in ftui)
        results["states_filled_500_runs_s"] = statistics.median(t for _, t, _ in ftui)
        results["runs_shown"] = ftui[0][2]
        results["first_frame_ratio"] = results["first_frame_500_runs_s"] / results["first_frame_bare_s"]
        latencies, lines = await key_latency(registry)
        latencies.sort()
        results["key_latency_p50_ms"] = latencies[len(latencies) // 2] * 1000
        results["key_latency_p95_ms"] = latencies[int(len(latencies) * 0.95)] * 1000
        results["key_latency_max_ms"] = latencies[-1] * 1000
        results["log_lines_shown_during_test"] = lines
        results.update(await heatmap_times(Path(tmp) / "heat"))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = asyncio.run(main(args.repeat))
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for key, value in out.items():
            print(f"{key:32} {value:.3f}" if isinstance(value, float) else f"{key:32} {value}")
