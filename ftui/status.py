"""One row per run (`RunStatus`) for `ftui list` and the app: the state of its jobs, progress from
events.jsonl, a result summary.

A run's state is the state of its job that matters most: an active one (running, then queued, then waiting),
else a broken one (failed, blocked, cancelled); with no open job, what its folder shows: `done` only when
it is trained AND evaluated, `trained` when only the final checkpoint exists, `new` when nothing does.
A `done` or `trained` run whose weights or results were made from a checkpoint trained again since is `stale`
(ftui/staleness.py).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ftui.queue import procs
from ftui.queue.store import Job, JobBrief, Store
from ftui.rundir import (
    EVENTS,
    FINAL_CHECKPOINT,
    RESULTS,
    EvalResults,
    RunProgress,
    is_trained,
    summarize_results,
)
from ftui.safe_text import clean
from ftui.staleness import StaleRuns
from ftui.state_display import STATE_STYLES

if TYPE_CHECKING:
    from ftui.gpu_usage import GpuUsage
    from ftui.registry import Registry
    from ftui.registry.records import Run
    from ftui.run_cache import RunFolderCache

STATE_ORDER = ("running", "queued", "waiting", "failed", "blocked", "cancelled")


def pick_job(jobs: Sequence[Job]) -> Job | None:
    """The job whose state the run shows (see the module docstring), or None when all are done."""
    for state in STATE_ORDER:
        for job in jobs:
            if job.state == state:
                return job
    return None


def run_state(jobs: Sequence[Job], trained: bool, evaluated: bool, progress: RunProgress | None) -> str:
    job = pick_job(jobs)
    if job is not None:
        return job.state
    if evaluated and trained:
        return "done"
    if trained:
        return "trained"
    if not jobs and progress is not None and progress.error is not None:
        return "failed"  # a run started by hand that crashed
    if evaluated:
        return "done"  # an archive of results without checkpoints
    return "new"


JOB_FIELDS = (
    "id",
    "state",
    "reason",
    "pid",
    "pid_start",
    "pgid",
    "slot",
    "exit_code",
    "signal",
    "attempts",
    "executor",
    "slurm_id",
    "partition",
    "node",
    "requeues",
    "outcome",
)


def _job_json(job: Job) -> dict[str, Any]:
    values = job.__dict__  # a dataclass without slots: its fields (thousands of jobs per listing)
    data = {k: values[k] for k in JOB_FIELDS}
    data.update(queued_at=job.queued_at, started=job.started, finished=job.finished, deps=list(job.deps))
    return data


@dataclass(frozen=True)
class RunStatus:
    """One run as `ftui list` and the app show it: the state of its jobs, progress from events.jsonl, a
    result summary. `to_json()` is one run of `ftui list --json`."""

    key: str
    experiment: str
    seed: int
    tasks: str  # short codes joined by "+"
    state: str
    action: str | None = None  # "train" | "eval" while a job is active
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    eta_s: float | None = None
    tokens_per_s: float | None = None
    eval_sets_done: int | None = None  # while evaluating
    eval_sets_total: int | None = None
    result: str = ""  # the first four trained tasks' metrics (summarize_results)
    result_all: str = ""  # every trained task's (`--wide`; not in --json, which has `metrics`)
    metrics: dict[str, float] | None = None  # eval.json: set name ("atlantis/distance") -> mean, for --json
    reason: str = ""
    pid: int | None = None
    pid_start: int | None = None
    process_started: float | None = None
    gpu: str | None = None  # the local slot of the current (or last) job
    executor: str | None = None
    slurm_id: str | None = None
    partition: str | None = None
    node: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    outcome: str | None = None  # of the current (or last) job; queue.model.OUTCOMES
    jobs: tuple[Job, ...] = ()
    gpu_memory_mib: float | None = None  # a running local job on a GPU slot (NVML, ftui/gpu_usage.py)
    gpu_util_percent: int | None = None
    stale: str = ""  # why the state is "stale" (ftui/staleness.py)

    def to_json(self) -> dict[str, Any]:
        values = self.__dict__
        data = {name: values[name] for name in _JSON_FIELDS}
        data["jobs"] = {job.action: _job_json(job) for job in self.jobs}
        return data


_JSON_FIELDS = tuple(
    f.name for f in fields(RunStatus) if f.name not in ("jobs", "result_all")
)  # `to_json`'s keys, in order


def list_rows(
    registry: Registry, store: Store, runs: Sequence[Run], now: float | None = None
) -> list[RunStatus]:
    """The status of `runs`, in registry order."""
    jobs = store.jobs(run_keys=[r.key for r in runs]) if runs else []
    return rows_from(registry, store.runs_dir, runs, jobs, store.run_status, store.run_results, now)


def rows_from(
    registry: Registry,
    runs_dir: str | os.PathLike[str],
    runs: Sequence[Run],
    jobs: Sequence[Job],
    progress: Callable[[str], RunProgress | None],
    results: Callable[[str], EvalResults | None],
    now: float | None = None,
) -> list[RunStatus]:
    """`list_rows` from given parts: the queue's `jobs` (those of other runs are ignored) and the readers of
    the run folders under `runs_dir` (`ftui list` passes its persisted cache's, ftui/run_cache.py)."""
    now = time.time() if now is None else now
    shorts = {t.name: t.short for t in registry.study.tasks}
    runs_dir = os.fspath(runs_dir)
    jobs_by_key: dict[str, list[Job]] = {}
    for job in jobs:
        jobs_by_key.setdefault(job.run_key, []).append(job)
    rows = []
    stale = StaleRuns(runs_dir, _with_ancestors(registry, runs), progress, results)
    for run in runs:
        run_dir = os.path.join(runs_dir, run.rel_dir)
        run_jobs = jobs_by_key.get(run.key, [])
        run_progress = progress(run_dir)
        run_results = results(run_dir)
        trained = is_trained(run_dir)
        state = run_state(run_jobs, trained, run_results is not None, run_progress)
        current = pick_job(run_jobs) or (max(run_jobs, key=lambda j: j.updated) if run_jobs else None)
        row = _row(run, shorts, state, current, run_jobs, run_progress, run_results, now)
        stale.note(run.key, run_progress, run_results, trained)  # read above: the rule reads nothing again
        why = stale.check(run.key) if state in ("done", "trained") else None
        rows.append(replace(row, state="stale", stale=why.reason) if why is not None else row)
    return with_gpu_usage(rows)  # gpu_memory_mib, gpu_util_percent of running jobs (NVML; None without it)


def _with_ancestors(registry: Registry, runs: Sequence[Run]) -> list[Run]:
    """`runs` and every run they descend from: what the staleness rule reads of the registry, without
    expanding its thousands of runs for `ftui list ONE-RUN`. A parent the registry does not know is left out
    (the rule then judges the child by itself)."""
    from ftui.registry import RegistryError

    found = {run.key: run for run in runs}
    todo = [run.parent_key for run in runs if run.parent_key is not None]
    while todo:
        key = todo.pop()
        if key in found:
            continue
        try:
            parent = registry.run(key)
        except RegistryError:
            continue
        found[key] = parent
        if parent.parent_key is not None:
            todo.append(parent.parent_key)
    return list(found.values())


class KnownRow(NamedTuple):
    """A run of `ftui list --json` whose line the cache remembered (`json_rows`): what the summary and the
    queue estimate need of it (never a running run: those depend on the time). A tuple: thousands are made
    per listing, each in a fraction of a frozen dataclass's time."""

    key: str
    experiment: str
    state: str
    jobs: tuple[JobBrief, ...]


def json_rows(
    registry: Registry,
    store: Store,
    runs: Sequence[Run],
    briefs: tuple[str, Sequence[JobBrief]],
    cache: RunFolderCache,
    now: float | None = None,
) -> list[tuple[RunStatus | KnownRow, str]]:
    """`rows_from` through the persisted cache, each row beside its line of `ftui list --json`
    (`json.dumps(row.to_json())`). `briefs`: `store.job_briefs()` (those of other runs are ignored). A run
    whose fingerprint (`Fingerprints`) is the one remembered with its line is neither read nor encoded
    again: its line comes back with a `KnownRow`; the others' jobs are read in full (`store.listing_jobs`)."""
    import json

    runs_dir = os.fspath(store.runs_dir)
    queue, all_briefs = briefs
    briefs_by_key = by_run(all_briefs)
    # Fingerprints first, then the reads: a file or a job that changes in between makes the remembered line
    # newer than its fingerprint says, so the next listing sees a new fingerprint and builds the line again.
    prints = Fingerprints(registry, runs_dir, cache, queue)
    cache.will_ask_rows(len(runs))
    out: list[tuple[RunStatus | KnownRow, str] | None] = []
    missed: list[tuple[int, Run, str | None]] = []
    for run in runs:
        run_briefs = briefs_by_key.get(run.key, ())
        fingerprint = prints.of(run, jobs_print(run_briefs))
        known = cache.known_row(run.key) if fingerprint is not None else None
        if known is not None and known[0] == fingerprint:
            out.append((KnownRow(run.key, run.experiment.name, known[1], tuple(run_briefs)), known[2]))
        else:
            missed.append((len(out), run, fingerprint))
            out.append(None)
    if missed:
        keys = [run.key for _, run, _ in missed]
        jobs = store.listing_jobs(keys if len(keys) < len(runs) else None)[0]
        fresh = rows_from(
            registry, runs_dir, [run for _, run, _ in missed], jobs, cache.progress, cache.results, now
        )
        for (index, run, fingerprint), row in zip(missed, fresh, strict=True):
            text = json.dumps(row.to_json())
            if fingerprint is not None and row.state != "running":  # a running row changes with the time
                cache.remember_row(run.key, fingerprint, row.state, text)
            out[index] = (row, text)
    return [pair for pair in out if pair is not None]


def _code_print() -> str:
    """The code that makes a row, as the size and mtime of its modules (an edited or upgraded ftui forgets
    the remembered rows)."""
    import sys
    import zlib

    from ftui import __version__

    names = ("ftui.status", "ftui.rundir", "ftui.staleness", "ftui.run_cache", "ftui.queue.model",
             "ftui.queue.store", "ftui.queue.procs", "ftui.registry.records", "ftui.safe_text",
             "ftui.app_data")  # fmt: skip
    stamps = [__version__]
    for name in names:
        path = getattr(sys.modules.get(name), "__file__", None)
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        stamps.append(f"{st.st_size}:{st.st_mtime_ns}" if st is not None else "?")
    return format(zlib.crc32(" ".join(stamps).encode()), "08x")


def _boot_print() -> str:
    """This boot and its clock: the kernel's boot id and boot time (whole seconds, moved by a clock step).
    A job's `process_started` counts from the boot (`procs.ticks_to_unix`); `procs.boot_time()` itself
    varies by some milliseconds from one call to the next, so it cannot be compared."""
    found = []
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/stat"):
        try:
            with open(path, "rb") as f:
                text = f.read()
        except OSError:
            found.append("?")
            continue
        at = text.find(b"btime ")
        found.append(text[at : text.find(b"\n", at)].decode() if at >= 0 else text.strip().decode())
    return " ".join(found)


def by_run(briefs: Sequence[JobBrief]) -> dict[str, list[JobBrief]]:
    """`briefs` by run key, each run's in the given order."""
    grouped: dict[str, list[JobBrief]] = {}
    for brief in briefs:
        grouped.setdefault(brief.run_key, []).append(brief)
    return grouped


def jobs_print(briefs: Sequence[JobBrief]) -> str:
    """A run's jobs' part of its fingerprint: each job's (id, rev), which names one version of it
    (ftui/queue/model.py REVISIONS)."""
    return " ".join([f"{b.id}.{b.rev}" for b in briefs])


class Fingerprints:
    """`of(run, jobs)`: everything a run's line of `ftui list --json` is made of, as one string: the code,
    the boot time (a job's `process_started`), the registry's words for the run, the keys of its files and
    of its ancestors' (staleness reads them), whether each is trained, and its jobs' versions (the queue's
    identity and each job's (id, rev): ftui/queue/model.py REVISIONS). None when a file is racy
    (ftui/run_cache.py): such a line is not remembered."""

    def __init__(self, registry: Registry, runs_dir: str, cache: RunFolderCache, queue: str) -> None:
        from ftui.registry import RegistryError

        self.registry = registry
        self.unknown_run = RegistryError
        self.folder_of = os.path.join(runs_dir, "")  # + rel_dir: the run's folder
        self.shorts = {t.name: t.short for t in registry.study.tasks}
        self.labels: dict[str, str] = {}
        self.files: dict[str, str | None] = {}  # run key -> its files' part (with its ancestors')
        self.racy_from_ns = cache.racy_from_ns()  # a file modified at or after this is racy
        self.head = f"{_code_print()}|{_boot_print()}|{queue}"

    def of(self, run: Run, jobs: str) -> str | None:
        """The fingerprint of `run`, whose jobs' part is `jobs` (`jobs_print`); None when a file is racy."""
        files = self._files(run, 0)
        if files is None:
            return None
        label = self.labels.get(run.experiment.name)
        if label is None:
            label = self.labels[run.experiment.name] = "+".join(
                self.shorts.get(t, t) for t in run.experiment.tasks
            )
        return f"{self.head}|{run.key!r}|{run.experiment.name!r}|{run.seed}|{label!r}|{files}|{jobs}"

    def _files(self, run: Run, depth: int) -> str | None:
        files = self.files
        if run.key in files:
            return files[run.key]
        files[run.key] = None  # a parent cycle (a registry refuses one) ends here, unremembered
        folder = self.folder_of + run.rel_dir
        events, results = self._key(f"{folder}/{EVENTS}"), self._key(f"{folder}/{RESULTS}")
        if events is None or results is None:
            return None
        try:  # `is_trained`, inline: one of the three stats of every run of a listing
            trained = "T" if stat.S_ISREG(os.stat(f"{folder}/{FINAL_CHECKPOINT}").st_mode) else "F"
        except OSError:
            trained = "F"
        found = f"{run.rel_dir!r},{events},{results},{trained}"
        if run.parent_key is not None:
            parent = self._parent(run.parent_key)
            above = self._files(parent, depth + 1) if parent is not None and depth < 64 else "?"
            if above is None:
                return None
            found = f"{found},<{above}"
        files[run.key] = found
        return found

    def _key(self, path: str) -> str | None:
        """A file's key as "inode:size:mtime_ns", "-" when there is none, None when it is racy."""
        try:
            st = os.stat(path)
        except OSError:
            return "-"
        if st.st_mtime_ns >= self.racy_from_ns:
            return None
        return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"

    def _parent(self, key: str) -> Run | None:
        try:
            return self.registry.run(key)
        except self.unknown_run:
            return None


def _metrics(results: EvalResults) -> dict[str, float]:
    """Every evaluated set's mean metric (MAE or accuracy, as eval.json has it), for `--json`."""
    return {name: entry.mean for name, entry in (results.sets or {}).items() if entry.mean is not None}


def _row(
    run: Run,
    shorts: dict[str, str],
    state: str,
    job: Job | None,
    jobs: Sequence[Job],
    progress: RunProgress | None,
    results: EvalResults | None,
    now: float,
) -> RunStatus:
    tasks = run.experiment.tasks
    active = job is not None and job.state in ("running", "queued", "waiting")
    evaluating = progress is not None and progress.action == "eval"
    return RunStatus(
        key=run.key,
        experiment=run.experiment.name,
        seed=run.seed,
        tasks="+".join(shorts.get(t, t) for t in tasks),
        state=state,
        action=job.action if active and job is not None else None,
        step=progress.step if progress else None,
        total_steps=progress.total_steps if progress else None,
        loss=progress.loss if progress else None,
        eta_s=progress.eta_now(now) if progress and state == "running" else None,
        tokens_per_s=progress.tokens_per_s if progress else None,
        eval_sets_done=progress.eval_sets_done if progress is not None and evaluating else None,
        eval_sets_total=progress.eval_total if progress is not None and evaluating else None,
        result=summarize_results(results, tasks, shorts) if results is not None else "",
        result_all=summarize_results(results, tasks, shorts, limit=None) if results is not None else "",
        metrics=_metrics(results) if results is not None else None,
        reason=job.reason if job is not None else "",
        pid=job.pid if job is not None else None,
        pid_start=job.pid_start if job is not None else None,
        process_started=procs.ticks_to_unix(job.pid_start) if job is not None else None,
        gpu=job.slot if job is not None else None,
        executor=job.executor if job is not None else None,
        slurm_id=job.slurm_id if job is not None else None,
        partition=job.partition if job is not None and job.slurm_id else None,
        node=job.node if job is not None and job.slurm_id else None,
        exit_code=job.exit_code if job is not None else None,
        signal=job.signal if job is not None else None,
        outcome=job.outcome if job is not None else None,
        jobs=tuple(jobs),
    )


def slurm_label(row: RunStatus) -> str:
    """ "1234 gpu/node07": the Slurm job id, partition and node of a run's current (or last) Slurm job."""
    if not row.slurm_id:
        return ""
    where = "/".join(x for x in (row.partition, row.node) if x)
    return f"{row.slurm_id} {where}".strip()


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def print_table(rows: Sequence[RunStatus], runs_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"runs in {runs_dir}", title_justify="left", expand=False)
    for name, justify in (
        ("run", "left"),
        ("tasks", "left"),
        ("state", "left"),
        ("progress", "right"),
        ("ETA", "right"),
        ("loss", "right"),
        ("result", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "result")  # type: ignore[arg-type]
    with_slurm = any(r.slurm_id for r in rows)
    if with_slurm:  # only when Slurm ran something: the local table stays as it was
        table.add_column("slurm", justify="left", no_wrap=True)
    for r in rows:
        state = r.state + (f" ({r.action})" if r.action else "")
        if r.action == "eval" and r.eval_sets_done is not None:
            total = f"/{r.eval_sets_total}" if r.eval_sets_total else ""
            progress = f"{r.eval_sets_done}{total} sets"
        elif r.step is not None and r.total_steps:
            progress = f"{r.step}/{r.total_steps}"
        else:
            progress = ""
        loss = f"{r.loss:.4f}" if r.loss is not None else ""
        detail = r.result_all or (r.reason if r.state in ("failed", "blocked", "cancelled") else "")
        if r.stale:
            detail = f"{detail} ({r.stale})" if detail else r.stale
        # Text, not markup: a reason may contain brackets (a log line, a path). Cleaned: reasons and Slurm
        # messages come from outside (squeue, the engine) and must not drive the terminal.
        cells: list[str | Text] = [
            r.key,
            r.tasks,
            Text(state, style=STATE_STYLES.get(r.state, "")),
            progress,
            format_eta(r.eta_s),
            loss,
            Text(clean(detail, one_line=True)),
        ]
        if with_slurm:
            cells.append(Text(clean(slurm_label(r), one_line=True)))
        table.add_row(*cells)
    Console().print(table)


def with_gpu_usage(rows: list[RunStatus], usage: GpuUsage | None = None) -> list[RunStatus]:
    """The rows of `ftui list` with `gpu_memory_mib` and `gpu_util_percent` set (None when unknown).

    Only local running jobs on a GPU slot are asked about; with none, neither ftui/gpu_usage.py nor NVML is
    even imported.
    """
    on_gpus = [row for row in rows if row.state == "running" and (row.gpu or "").startswith("gpu")]
    on_gpus = [row for row in on_gpus if not row.slurm_id]
    if not on_gpus:
        return rows
    from ftui import gpu_usage

    jobs = {}
    for row in on_gpus:
        job = next((j for j in row.jobs if j.action == row.action), None)
        jobs[row.key] = gpu_usage.JobProcs(row.pid, job.pgid if job is not None else None)
    found = (usage or gpu_usage.shared).usage(jobs)
    out = []
    for row in rows:
        figures = found.get(row.key)
        if figures is not None:
            memory = round(figures.memory_mib, 1) if figures.memory_mib is not None else None
            row = replace(row, gpu_memory_mib=memory, gpu_util_percent=figures.util_percent)
        out.append(row)
    return out
