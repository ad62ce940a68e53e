"""The app's data source: one object that knows the registry, the runs folder and the job queue.

The screens never touch SQLite or files themselves: they call this from thread workers and get plain,
immutable rows back (`RunRow`), so the UI thread only diffs and draws. Queue actions go through the same
functions as the CLI (`ftui launch` etc.), so the app and the command line behave the same.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Display of each state: a symbol plus the word, so NO_COLOR and colour-blind users read it the same way.
STATE_SYMBOLS: dict[str, str] = {
    "new": "·",
    "queued": "◌",
    "waiting": "…",
    "running": "▶",
    "done": "✔",
    "trained": "◑",
    "failed": "✖",
    "cancelled": "⊘",
    "blocked": "■",
}
STATE_STYLES: dict[str, str] = {
    "new": "dim",
    "queued": "cyan",
    "waiting": "cyan",
    "running": "bold yellow",
    "done": "green",
    "trained": "green",
    "failed": "bold red",
    "cancelled": "magenta",
    "blocked": "red",
}
ACTIVE_STATES = frozenset({"queued", "waiting", "running"})


@dataclass(frozen=True)
class RunRow:
    """One run (experiment x seed) as the home table shows it."""

    key: str
    experiment: str
    seed: int
    family: str | None
    tasks: str  # short codes, e.g. "D+Co"
    state: str
    action: str | None = None  # "train" | "eval" while a job is active
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    eta_s: float | None = None
    gpu: str | None = None
    result: str = ""
    reason: str = ""

    @property
    def fraction(self) -> float | None:
        if self.step is None or not self.total_steps:
            return None
        return max(0.0, min(1.0, self.step / self.total_steps))


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def format_bar(fraction: float | None, width: int = 10) -> str:
    if fraction is None:
        return ""
    filled = int(round(fraction * width))
    return "█" * filled + "░" * (width - filled) + f" {int(fraction * 100):3d}%"


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stat_mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


@dataclass(frozen=True)
class JobView:
    """The queue's view of one run: the state of its active (or latest) job."""

    state: str
    action: str | None
    gpu: str | None
    reason: str


def job_view(jobs: Sequence[Any], trained: bool, evaluated: bool) -> JobView | None:
    """One run's state from its train and eval jobs (`ftui list` semantics): an active job wins (running,
    then queued, then waiting); else a broken one (failed, blocked, cancelled); `done` only when training and
    evaluation both finished."""
    if not jobs:
        return None
    by_state: dict[str, Any] = {}
    for job in sorted(jobs, key=lambda j: j.seq):
        by_state.setdefault(job.state, job)
    for state in ("running", "queued", "waiting", "failed", "blocked", "cancelled"):
        job = by_state.get(state)
        if job is not None:
            return JobView(state, job.action, job.slot, job.reason)
    if evaluated:
        return JobView("done", None, None, "")
    if trained:
        return JobView("trained", None, None, "")
    latest = max(jobs, key=lambda j: j.updated)
    return JobView("done" if latest.state == "done" else latest.state, None, None, latest.reason)


class AppData:
    """Registry + runs folder + queue, for the app. Called from worker threads: `rows()` from the one
    refresh worker at a time (serialised by a lock), the actions from action workers (the Store is
    thread-safe)."""

    def __init__(
        self,
        registry: Any,
        runs_dir: Path,
        *,
        profile: str | None = None,
        read_only: bool = False,
        start_worker: bool = True,
    ) -> None:
        from ftui.store import Store

        self.registry = registry
        self.runs_dir = runs_dir
        self.profile = profile
        self.read_only = read_only
        self.start_worker = start_worker  # tests that only check the queue turn the worker off
        self.store = Store(runs_dir)
        self.runs = list(registry.runs())
        self._by_key = {run.key: run for run in self.runs}
        self._shorts = {t.name: t.short for t in registry.study.tasks}
        self._last_rows: dict[str, RunRow] = {}
        self._lock = threading.Lock()
        self._eval_totals: dict[str, int | None] = {}

    def run(self, key: str) -> Any:
        return self._by_key[key]

    def run_dir(self, key: str) -> Path:
        return self.runs_dir / self._by_key[key].rel_dir

    def tasks_label(self, run: Any) -> str:
        tasks = run.experiment.tasks
        if run.experiment.kind == "pretrain" and len(tasks) == len(self._shorts):
            return "all"
        return "+".join(self._shorts.get(t, t) for t in tasks)

    def last_row(self, key: str) -> RunRow | None:
        return self._last_rows.get(key)

    def rows(self) -> tuple[list[RunRow], bool]:
        """Every run's row; `changed` says whether any row differs from the previous call."""
        with self._lock:
            jobs_by_key: dict[str, list[Any]] = {}
            for job in self.store.jobs():
                jobs_by_key.setdefault(job.run_key, []).append(job)
            rows = [self._row(run, jobs_by_key.get(run.key, [])) for run in self.runs]
            changed = any(self._last_rows.get(r.key) != r for r in rows) or len(rows) != len(self._last_rows)
            self._last_rows = {r.key: r for r in rows}
            return rows, changed

    def _row(self, run: Any, jobs: list[Any]) -> RunRow:
        from ftui.runstate import summarize_results

        folder = self.runs_dir / run.rel_dir
        progress = self.store.run_status(folder)
        results = self.store.run_results(folder)
        trained = (folder / "checkpoints" / "final.pt").is_file()
        view = job_view(jobs, trained, results is not None) or self._folder_state(progress, trained, results)
        step = progress.step if progress else None
        total = progress.total_steps if progress else None
        if view.action == "eval" and progress is not None and progress.action == "eval":
            # While evaluating, the bar counts evaluated sets (step/total belong to training).
            step, total = progress.eval_sets_done, self._eval_sets_total(run)
        return RunRow(
            key=run.key,
            experiment=run.experiment.name,
            seed=run.seed,
            family=run.experiment.family,
            tasks=self.tasks_label(run),
            state=view.state,
            action=view.action,
            step=step,
            total_steps=total,
            loss=progress.loss if progress else None,
            eta_s=progress.eta_now() if progress and view.state == "running" else None,
            gpu=view.gpu,
            result=summarize_results(results, run.experiment.tasks, self._shorts) if results else "",
            reason=view.reason,
        )

    def _eval_sets_total(self, run: Any) -> int | None:
        """How many sets the run's evaluation covers (from its resolved config; cached per run)."""
        if run.key not in self._eval_totals:
            from ftui.registry import RegistryError

            try:
                evaluation = self.registry.resolve_config(run, self.profile).get("eval", {})
                total: int | None = len(evaluation.get("sets", ())) * len(evaluation.get("tasks", ()))
            except RegistryError:
                total = None
            self._eval_totals[run.key] = total
        return self._eval_totals[run.key]

    @staticmethod
    def _folder_state(progress: Any, trained: bool, results: dict[str, Any] | None) -> JobView:
        """No job in the queue (a results archive, or runs made by hand): what the folder shows."""
        if results is not None:
            return JobView("done", None, None, "")
        if progress is not None and progress.error is not None:
            return JobView("failed", None, None, progress.error)
        if trained:
            return JobView("trained", None, None, "")
        return JobView("new", None, None, "")

    # -- actions (the same calls as the CLI commands) -----------------------------------------------------
    def cancel(self, keys: list[str]) -> str:
        changed = self.store.cancel(keys)
        if not changed:
            return "Nothing to cancel: no queued or running job."
        running = sum(1 for job in changed if job.state == "running")
        return f"Cancelled {len(changed)} job(s)" + (f"; stopping {running} running" if running else "")

    def retry(self, keys: list[str]) -> str:
        requeued = self.store.retry(keys)
        if not requeued:
            return "Nothing to retry: no failed, cancelled or blocked job."
        self._ensure_worker()
        return f"Re-queued {len(requeued)} job(s): " + ", ".join(
            f"{j.run_key} {j.action}" for j in requeued[:6]
        )

    def _ensure_worker(self) -> None:
        if self.start_worker and not self.read_only:
            from ftui.runner import ensure_worker

            ensure_worker(self.runs_dir)

    def launch(self, keys: list[str]) -> str:
        """Queue training + evaluation of `keys` with their missing parents (what `ftui launch` does)."""
        return self._enqueue(keys, ("train", "eval"))

    def evaluate(self, keys: list[str]) -> str:
        """Queue evaluation only (what `ftui eval` does): after the run's training if that is still open."""
        return self._enqueue(keys, ("eval",))

    def _enqueue(self, keys: list[str], actions: tuple[str, ...]) -> str:
        from ftui.registry import write_run_config
        from ftui.store import JobSpec

        targets = [self._by_key[k] for k in keys]
        ordered: list[Any] = []  # parents first, each run once
        for run in targets:
            chain = [run]
            while "train" in actions and chain[-1].parent_key is not None:
                chain.append(self.registry.run(chain[-1].parent_key))
            for item in reversed(chain):
                if item not in ordered:
                    ordered.append(item)
        # Every config is written before anything is queued: an invalid config queues nothing.
        for run in ordered:
            write_run_config(self.registry, run, self.runs_dir, self.profile)
        specs: list[Any] = []
        wanted = {run.key for run in targets}
        for run in ordered:
            parent = ((run.parent_key, "train"),) if run.parent_key else ()
            if "train" in actions:
                specs.append(JobSpec(run.key, run.experiment.name, run.rel_dir, "train", parent))
            if run.key in wanted and "eval" in actions:
                specs.append(
                    JobSpec(run.key, run.experiment.name, run.rel_dir, "eval", ((run.key, "train"),))
                )
        result = self.store.enqueue(specs)
        if result.queued:
            self._ensure_worker()
        parts = [f"queued {len(result.queued)} job(s)"]
        if result.queued:
            parts[0] += ": " + ", ".join(f"{j.run_key} {j.action}" for j in result.queued[:6])
            parts[0] += " …" if len(result.queued) > 6 else ""
        if result.kept:
            parts.append(f"{len(result.kept)} already queued or running")
        if result.skipped:
            parts.append(f"{len(result.skipped)} already done")
        for spec, why in result.refused:
            parts.append(f"refused {spec.run_key} {spec.action}: {why}")
        return "; ".join(parts)
