"""The app's data source: one object that knows the registry, the runs folder and the job queue.

The screens never touch SQLite or files themselves: they call this from thread workers and get plain,
immutable rows back (`RunRow`), so the UI thread only diffs and draws. Queue actions go through the same
functions as the CLI (`ftui launch` etc.), so the app and the command line behave the same.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Collection
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftui.safe_text import clean

if TYPE_CHECKING:
    from ftui.queue.store import JobBrief
    from ftui.registry import Registry
    from ftui.registry.records import Run
    from ftui.run_cache import RunFolderCache
    from ftui.status import RunStatus

# The app keeps what it read from the run folders in runs/.ftui-cache-app.json (ftui/run_cache.py), so that
# its first read of thousands of folders opens only the files changed since: written after the first read,
# then at most this often while files change (never when browsing only).
CACHE_SAVE_S = 60.0
# A refresh looks at the files of the runs on screen, the running ones and those whose jobs changed, and of
# this many others in turn (`_fingerprinted_rows`): at 5,000 runs every run folder is looked at at least every
# 10 ticks (10 s), and a study of up to this many runs has every folder looked at every tick.
SWEEP_RUNS = 500


@dataclass(frozen=True)
class RunRow:
    """One run (experiment x seed) as the home table shows it: `ftui.status.RunStatus` made for display
    (text cleaned for the terminal, the task label, the progress bar counting evaluated sets while
    evaluating, where the job runs)."""

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

    @cached_property
    def search_text(self) -> str:
        """What the home screen's filter words are matched against: name, family, tasks, state (lower case;
        computed once per row, not once per key press)."""
        return f"{self.key} {self.family or ''} {self.tasks} {self.state}".lower()

    @property
    def fraction(self) -> float | None:
        if self.step is None or not self.total_steps:
            return None
        return max(0.0, min(1.0, self.step / self.total_steps))


ROW_FIELDS = tuple(f.name for f in fields(RunRow))  # a remembered row: its values in this order


@dataclass(frozen=True)
class KeptRow:
    """A row and what it was made from: its fingerprint (`ftui.status.Fingerprints`) and its jobs' part of
    it (`ftui.status.jobs_print`), compared alone while its folder is not looked at."""

    fingerprint: str
    jobs: str
    row: RunRow


def where_label(status: RunStatus) -> str | None:
    """The home table's GPU column: the local slot while running; a Slurm job's id, partition and node
    ("slurm 1234 gpu/node07") while it runs and after, so a failed run's Slurm job can be looked up."""
    if status.slurm_id:
        from ftui.status import slurm_label

        return f"slurm {slurm_label(status)}"
    if status.state != "running":
        return None
    from ftui.gpu_usage import format_usage

    usage = format_usage(status.gpu_memory_mib, status.gpu_util_percent)  # "gpu0 1.2G 35%"
    return f"{status.gpu} {usage}" if status.gpu and usage else status.gpu


def format_bar(fraction: float | None, width: int = 10) -> str:
    if fraction is None:
        return ""
    filled = int(round(fraction * width))
    return "█" * filled + "░" * (width - filled) + f" {int(fraction * 100):3d}%"


def stat_mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


class AppData:
    """Registry + runs folder + queue, for the app. Called from worker threads: `rows()` from the one
    refresh worker at a time (serialised by a lock), the actions from action workers (the Store is
    thread-safe)."""

    def __init__(
        self,
        registry: Registry,
        runs_dir: Path,
        *,
        profile: str | None = None,
        read_only: bool = False,
        start_worker: bool = True,
    ) -> None:
        from ftui.queue.store import Store

        self.registry = registry
        self.runs_dir = runs_dir
        self.profile = profile
        self.read_only = read_only
        self.start_worker = start_worker  # tests that only check the queue turn the worker off
        self.store = Store(runs_dir, keep_reading=True)  # an unreadable queue shows as `store.problem`
        self.runs = list(registry.runs())
        self._by_key = {run.key: run for run in self.runs}
        self._shorts = {t.name: t.short for t in registry.study.tasks}
        self._task_labels: dict[str, str] = {}
        # Two caches with one owner each: `rows()` diffs against what it last returned to the home table
        # (`_table_rows`); `row()` (the run screen) only updates what `last_row` answers (`_latest`). When
        # `row()` wrote the diff cache, a run that failed while its screen was open looked unchanged to the
        # home table, which then kept showing "running".
        self._table_rows: dict[str, RunRow] = {}
        self._latest: dict[str, RunRow] = {}
        self._lock = threading.Lock()
        self._eval_totals: dict[str, int | None] = {}
        self._folders: RunFolderCache | None = None  # made by the first read, in its worker thread
        self._saved_at: float | None = None  # time.monotonic() of the last cache save
        # Rows made under a fingerprint, reused while it stays the same (`_fingerprinted_rows`), and the
        # queue's job briefs with the change token they were read at.
        self._known: dict[str, KeptRow] = {}
        self._briefs: tuple[Any, str, dict[str, list[JobBrief]]] = (None, "", {})
        self._sweep = 0  # the index of the first run the next refresh looks at in turn (SWEEP_RUNS)

    def run(self, key: str) -> Run:
        return self._by_key[key]

    def run_dir(self, key: str) -> Path:
        return self.runs_dir / self._by_key[key].rel_dir

    def tasks_label(self, run: Run) -> str:
        label = self._task_labels.get(run.experiment.name)  # one per experiment, whatever its seeds
        if label is None:
            tasks = run.experiment.tasks
            if run.experiment.kind == "pretrain" and len(tasks) == len(self._shorts):
                label = "all"
            else:
                label = "+".join(self._shorts.get(t, t) for t in tasks)
            self._task_labels[run.experiment.name] = label
        return label

    def last_row(self, key: str) -> RunRow | None:
        """The newest row of `key` read by `rows()` or `row()`, for the run screen's first frame."""
        return self._latest.get(key)

    def skeleton_rows(self) -> list[RunRow]:
        """Rows from the registry alone, for the first frame (state "reading" until the folders are read)."""
        return [
            RunRow(
                run.key,
                run.experiment.name,
                run.seed,
                run.experiment.family,
                self.tasks_label(run),
                "reading",
            )
            for run in self.runs
        ]

    def row(self, key: str) -> RunRow:
        """One run's row, read now (the run screen's header, while the home table is not refreshing)."""
        run = self._by_key[key]
        with self._lock:
            row = self._row(run, self._statuses([run])[0])
            self._latest[key] = row
            return row

    def _cache(self) -> RunFolderCache:
        if self._folders is None:
            from ftui.run_cache import APP_CACHE_NAME, OBSOLETE_NAMES, RunFolderCache

            # One loss: a row shows the last one (the run screen reads its run's curve itself), and a first
            # read of thousands of events.jsonl then parses their last 16 step events, not 200.
            self._folders = RunFolderCache(self.store.runs_dir, history=1, name=APP_CACHE_NAME)
            for name in OBSOLETE_NAMES if not self.read_only else ():
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.store.runs_dir, name))
        return self._folders

    def _save_cache(self) -> None:
        import time

        now = time.monotonic()
        if not self.read_only and (self._saved_at is None or now - self._saved_at >= CACHE_SAVE_S):
            self._cache().save()  # False when nothing new was read or the folder cannot be written: fine
            self._saved_at = now

    def _statuses(self, runs: list[Run]) -> list[RunStatus]:
        """`ftui.status.list_rows` of a few `runs` (the run screen's), the run folders read through the app's
        persisted cache (the caller holds the lock)."""
        from ftui.status import rows_from

        folders = self._cache()
        jobs = self.store.jobs(run_keys=[r.key for r in runs])
        rows = rows_from(self.registry, self.store.runs_dir, runs, jobs, folders.progress, folders.results)
        self._save_cache()
        return rows

    def _job_briefs(self) -> tuple[str, dict[str, list[JobBrief]], bool]:
        """The queue's identity, its jobs' briefs by run key and whether they were read again: only after a
        commit to the queue (`Store.change_token`), so most ticks read none of the 10,000 jobs of a sweep."""
        token = self.store.change_token()
        fresh = token is None or self._briefs[0] != token
        if fresh:
            from ftui.status import by_run

            queue, briefs = self.store.job_briefs()
            self._briefs = (token, queue, by_run(briefs))
        return self._briefs[1], self._briefs[2], fresh

    def _fingerprinted_rows(self, visible: Collection[str]) -> list[RunRow]:
        """Every run's row: a run whose fingerprint (`ftui.status.Fingerprints`: its jobs' versions, its
        files' and its ancestors' keys, the registry's words for it, the code) is the one its row was made
        under, by an earlier tick or an earlier app (ftui/run_cache.py `remember_row`), is neither read nor
        built again; the others are read and remembered (not running ones: their rows depend on the time).

        After the first read, a run whose row is remembered and whose jobs did not change has its folder
        looked at (three stats) only when it is on screen (`visible`: run keys) or its turn comes (SWEEP_RUNS
        a tick): a tick at 5,000 runs costs some 600 runs' stats instead of 5,000 rows built again (issue
        18). A file changed by hand in a finished run off screen shows within 10 s instead of 1 s."""
        import json

        from ftui.status import Fingerprints, jobs_print, rows_from

        folders = self._cache()
        queue, briefs_by_key, jobs_changed = self._job_briefs()
        # Fingerprints first, then the reads (see ftui.status.json_rows).
        prints = Fingerprints(self.registry, os.fspath(self.store.runs_dir), folders, queue)
        first = not self._known
        if first:
            folders.will_ask_rows(len(self.runs))
        count, start = len(self.runs), self._sweep
        self._sweep = (start + SWEEP_RUNS) % max(1, count)
        out: list[RunRow | None] = []
        missed: list[tuple[int, Run, str | None, str]] = []
        for index, run in enumerate(self.runs):
            known = self._known.get(run.key)
            if (index - start) % count < SWEEP_RUNS or run.key in visible:
                known = None  # its turn, or on screen: its folder is looked at
            if known is not None and not jobs_changed:
                out.append(known.row)  # settled, and not its turn: its folder is not looked at
                continue
            jobs = jobs_print(briefs_by_key.get(run.key, ()))
            if known is not None and jobs == known.jobs:
                out.append(known.row)
                continue
            found = prints.of(run, jobs)
            fingerprint = (
                None if found is None else f"{found}|{run.experiment.family!r}|{self.tasks_label(run)!r}"
            )
            if fingerprint is not None:
                row = self._known_row(run, fingerprint, jobs, folders if first else None)
                if row is not None:
                    out.append(row)
                    continue
            missed.append((len(out), run, fingerprint, jobs))
            out.append(None)
        if missed:
            keys = [run.key for _, run, _, _ in missed]
            jobs_read = self.store.listing_jobs(keys if len(keys) < len(self.runs) else None)[0]
            statuses = rows_from(
                self.registry, self.store.runs_dir, [run for _, run, _, _ in missed], jobs_read,
                folders.progress, folders.results,
            )  # fmt: skip
            for (index, run, fingerprint, jobs), status in zip(missed, statuses, strict=True):
                row = self._row(run, status)
                # Not a running row (its ETA moves with the clock), nor one counting evaluated sets against
                # the resolved config (the profile and the config are not in the fingerprint).
                evaluating = status.action == "eval" and status.eval_sets_done is not None
                if fingerprint is not None and status.state != "running" and not evaluating:
                    self._known[run.key] = KeptRow(fingerprint, jobs, row)
                    values = [getattr(row, name) for name in ROW_FIELDS]
                    folders.remember_row(run.key, fingerprint, status.state, json.dumps(values))
                else:
                    self._known.pop(run.key, None)
                out[index] = row
        self._save_cache()
        return [row for row in out if row is not None]

    def _known_row(
        self, run: Run, fingerprint: str, jobs: str, folders: RunFolderCache | None
    ) -> RunRow | None:
        """The row made under `fingerprint`: this app's from an earlier tick, else (`folders`: the first
        read) an earlier app's, from the cache file."""
        import json

        found = self._known.get(run.key)
        if found is not None and found.fingerprint == fingerprint:
            return found.row
        known = folders.known_row(run.key) if folders is not None else None
        if known is None or known[0] != fingerprint:
            return None
        try:
            row = RunRow(*json.loads(known[2]))
        except (ValueError, TypeError):
            return None
        if row.key != run.key:
            return None
        self._known[run.key] = KeptRow(fingerprint, jobs, row)
        return row

    def rows(self, visible: Collection[str] = ()) -> tuple[list[RunRow], bool]:
        """Every run's row (`ftui list`'s rows: same states, same progress); `changed` says whether any row
        differs from what the previous call returned. A row equal to the one returned last time is that very
        object, so the home table finds the changed rows of 5,000 by identity. `visible`: the keys of the
        rows on screen, whose folders are looked at every time (`_fingerprinted_rows`)."""
        with self._lock:
            shown = self._table_rows
            fresh = self._fingerprinted_rows(visible)
            rows = []
            changed = len(shown) != len(self.runs)
            for row in fresh:
                if (old := shown.get(row.key)) == row:
                    row = old  # the same object: the table skips it without comparing it again
                else:
                    changed = True
                rows.append(row)
            self._table_rows = {r.key: r for r in rows}
            self._latest.update(self._table_rows)
            return rows, changed

    def _row(self, run: Run, d: RunStatus) -> RunRow:
        step, total = d.step, d.total_steps
        if d.action == "eval" and d.eval_sets_done is not None:
            # While evaluating, the bar counts evaluated sets (step/total belong to training).
            step, total = d.eval_sets_done, d.eval_sets_total or self._eval_sets_total(run)
        return RunRow(
            key=run.key,
            experiment=run.experiment.name,
            seed=run.seed,
            family=run.experiment.family,
            tasks=self.tasks_label(run),
            state=d.state,
            action=d.action,
            step=step,
            total_steps=total,
            loss=d.loss,
            eta_s=d.eta_s,
            gpu=clean(where_label(d) or "", one_line=True) or None,  # a Slurm node name comes from squeue
            result=clean(d.result, one_line=True),
            reason=clean(d.reason or "", one_line=True),  # Slurm messages, the engine's errors
        )

    def _eval_sets_total(self, run: Run) -> int | None:
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
            from ftui.queue.worker import ensure_worker

            ensure_worker(self.runs_dir)

    def launch(self, keys: list[str]) -> str:
        """Queue training + evaluation of `keys` with their missing parents (`ftui launch`)."""
        return self._launch(keys, ("train", "eval"))

    def evaluate(self, keys: list[str]) -> str:
        """Queue evaluation only (`ftui eval`): after the run's training if that is still open."""
        return self._launch(keys, ("eval",))

    def _launch(self, keys: list[str], actions: tuple[str, ...]) -> str:
        from ftui.queue.launching import launch

        report = launch(
            self.registry,
            [self._by_key[k] for k in keys],
            self.runs_dir,
            profile=self.profile,
            actions=actions,
            start_worker=self.start_worker and not self.read_only,
            store=self.store,
        )
        return report.summary().replace("\n", "; ")
