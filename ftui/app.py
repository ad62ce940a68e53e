"""The Textual app: `ftui` without a sub-command. Screens live in ftui/screens/, widgets in ftui/widgets/.

`make_app` is the one factory for the CLI and the tests (point it at any registry and runs folder). The app
never runs jobs itself: actions go to the queue, and the detached worker process runs them, so closing the
app (or losing SSH) never touches a running job.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from ftui.screens.help_screen import HelpScreen
from ftui.screens.keys import help_lines


class FtuiCommands(Provider):
    """The command palette (ctrl+p) lists every action of the screen it was opened from."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        commands = getattr(self.screen, "palette_commands", None)
        found: list[tuple[str, str, Callable[[], object]]] = list(commands()) if callable(commands) else []
        app = self.app
        if isinstance(app, FtuiApp):
            found.append(("Help: keys", "show every key (?)", app.action_help))
        return found

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class FtuiApp(App[int]):
    TITLE = "ftui"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {FtuiCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(
        self,
        registry_path: Path,
        runs_dir: Path | None = None,
        profile: str | None = None,
        *,
        read_only: bool = False,
        start_worker: bool = True,
    ) -> None:
        super().__init__()
        self.start_worker = start_worker
        self.registry_path = registry_path
        self.runs_override = runs_dir
        self.profile = profile
        self.read_only = read_only
        self.data: Any = None  # AppData once the registry loaded
        self.registry_problems: str | None = None
        self.queue_alerts: Any = None  # ftui.notify.QueueAlerts once the home screen shows

    def on_mount(self) -> None:
        from ftui.app_data import AppData
        from ftui.registry import RegistryError, load_registry
        from ftui.screens.home_screen import HomeScreen
        from ftui.screens.registry_error_screen import RegistryErrorScreen

        try:
            registry = load_registry(self.registry_path)
            registry.profile(self.profile)  # a --profile typo: the registry screen says so
        except RegistryError as error:
            self.registry_problems = str(error)
        except OSError as error:  # unreadable file, folder instead of file: same screen, no traceback
            self.registry_problems = f"{self.registry_path}: {error.strerror or error}"
        if self.registry_problems is not None:
            self.push_screen(RegistryErrorScreen(str(self.registry_path), self.registry_problems))
            return
        runs_dir = registry.runs_dir(self.runs_override)
        self.data = AppData(
            registry, runs_dir, profile=self.profile, read_only=self.read_only, start_worker=self.start_worker
        )
        self.sub_title = f"{self.registry_path} · {runs_dir}" + (" · read-only" if self.read_only else "")
        self.push_screen(HomeScreen(self.data))
        if not self.read_only:  # toast + bell when a job fails or the queue empties
            from ftui.app_alerts import watch_queue

            self.queue_alerts = watch_queue(self, self.data.store, bell=registry.app.bell)

    def on_unmount(self) -> None:
        gc.unfreeze()  # the home screen froze its first load (HomeScreen.on_runs_refreshed): collectable now

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        sections: list[tuple[str, list[tuple[str, str]]]] = []
        table = getattr(self.screen, "KEYS", None)
        if table:
            sections.append((type(self.screen).__name__.removesuffix("Screen"), help_lines(table)))
        sections.append(("Everywhere", [("?", "this help"), ("ctrl+p", "command palette"), ("q", "quit")]))
        self.push_screen(HelpScreen(sections))


def make_app(
    registry_path: Path,
    runs_dir: Path | None = None,
    profile: str | None = None,
    *,
    read_only: bool = False,
    start_worker: bool = True,
) -> FtuiApp:
    """One factory for the CLI and the tests.

    `read_only` (a results archive): browse and heatmaps only, no launch/cancel/retry and no worker.
    `start_worker=False` queues jobs without starting the worker (tests that only check the queue).
    """
    return FtuiApp(Path(registry_path), runs_dir, profile, read_only=read_only, start_worker=start_worker)


def run_app(args: Any) -> int:
    """Entry from `ftui` with no sub-command: args has .registry, .runs, .profile (and maybe .read_only)."""
    app = make_app(args.registry, args.runs, args.profile, read_only=bool(getattr(args, "read_only", False)))
    app.run()
    return 2 if app.registry_problems is not None else (app.return_code or 0)
