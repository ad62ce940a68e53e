"""One row per run for `ftui list`: the state of its jobs, progress from events.jsonl, a result summary.

A run's state is the state of its job that matters most: an active one (running, then queued, then waiting),
else a broken one (failed, blocked, cancelled); with no open job, what its folder shows: `done` only when
it is trained AND evaluated, `trained` when only the final checkpoint exists, `new` when nothing does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftui import procs
from ftui.runstate import RunProgress, is_trained, summarize_results
from ftui.safe_text import clean
from ftui.store import Job, Store

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


def list_rows(
    registry: Any, store: Store, runs: Sequence[Any], now: float | None = None
) -> list[dict[str, Any]]:
    """Plain dicts (JSON-ready) for `runs`, in registry order."""
    now = time.time() if now is None else now
    shorts = {t.name: t.short for t in registry.study.tasks}
    runs_dir = str(store.runs_dir)
    jobs_by_key: dict[str, list[Job]] = {}
    for job in store.jobs(run_keys=[r.key for r in runs]) if runs else []:
        jobs_by_key.setdefault(job.run_key, []).append(job)
    rows = []
    for run in runs:
        run_dir = os.path.join(runs_dir, run.rel_dir)
        jobs = jobs_by_key.get(run.key, [])
        progress = store.run_status(run_dir)
        results = store.run_results(run_dir)
        trained = is_trained(run_dir)
        state = run_state(jobs, trained, results is not None, progress)
        current = pick_job(jobs) or (max(jobs, key=lambda j: j.updated) if jobs else None)
        rows.append(_row(run, shorts, state, current, jobs, progress, results, now))
    from ftui.gpu_usage import add_to_rows

    add_to_rows(rows)  # gpu_memory_mib, gpu_util_percent of running jobs (NVML; None without it)
    return rows


def _row(
    run: Any,
    shorts: dict[str, str],
    state: str,
    job: Job | None,
    jobs: Sequence[Job],
    progress: RunProgress | None,
    results: dict[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    tasks = run.experiment.tasks
    active = job is not None and job.state in ("running", "queued", "waiting")
    return {
        "key": run.key,
        "experiment": run.experiment.name,
        "seed": run.seed,
        "tasks": "+".join(shorts.get(t, t) for t in tasks),
        "state": state,
        "action": job.action if active and job is not None else None,
        "step": progress.step if progress else None,
        "total_steps": progress.total_steps if progress else None,
        "loss": progress.loss if progress else None,
        "eta_s": progress.eta_now(now) if progress and state == "running" else None,
        "tokens_per_s": progress.tokens_per_s if progress else None,
        "eval_sets_done": progress.eval_sets_done if progress and progress.action == "eval" else None,
        "eval_sets_total": progress.eval_total if progress and progress.action == "eval" else None,
        "result": summarize_results(results, tasks, shorts) if results else "",
        "reason": job.reason if job is not None else "",
        "pid": job.pid if job is not None else None,
        "pid_start": job.pid_start if job is not None else None,
        "process_started": procs.ticks_to_unix(job.pid_start) if job is not None else None,
        "gpu": job.slot if job is not None else None,
        "executor": job.executor if job is not None else None,
        "slurm_id": job.slurm_id if job is not None else None,
        "partition": job.partition if job is not None and job.slurm_id else None,
        "node": job.node if job is not None and job.slurm_id else None,
        "exit_code": job.exit_code if job is not None else None,
        "signal": job.signal if job is not None else None,
        "jobs": {j.action: _job_dict(j) for j in jobs},
    }


def _job_dict(job: Job) -> dict[str, Any]:
    keep = (
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
    )
    data = {k: getattr(job, k) for k in keep}
    data.update(queued_at=job.queued_at, started=job.started, finished=job.finished, deps=list(job.deps))
    return data


def slurm_label(row: dict[str, Any]) -> str:
    """ "1234 gpu/node07": the Slurm job id, partition and node of a run's current (or last) Slurm job."""
    if not row.get("slurm_id"):
        return ""
    where = "/".join(x for x in (row.get("partition"), row.get("node")) if x)
    return f"{row['slurm_id']} {where}".strip()


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def print_table(rows: Sequence[dict[str, Any]], runs_dir: Path) -> None:
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
    with_slurm = any(r.get("slurm_id") for r in rows)
    if with_slurm:  # only when Slurm ran something: the local table stays as it was
        table.add_column("slurm", justify="left", no_wrap=True)
    styles = {"running": "yellow", "done": "green", "failed": "red", "blocked": "red", "cancelled": "magenta"}
    for r in rows:
        state = r["state"] + (f" ({r['action']})" if r["action"] else "")
        if r["action"] == "eval" and r["eval_sets_done"] is not None:
            total = f"/{r['eval_sets_total']}" if r.get("eval_sets_total") else ""
            progress = f"{r['eval_sets_done']}{total} sets"
        elif r["step"] is not None and r["total_steps"]:
            progress = f"{r['step']}/{r['total_steps']}"
        else:
            progress = ""
        loss = f"{r['loss']:.4f}" if r["loss"] is not None else ""
        detail = r["result"] or (r["reason"] if r["state"] in ("failed", "blocked", "cancelled") else "")
        # Text, not markup: a reason may contain brackets (a log line, a path). Cleaned: reasons and Slurm
        # messages come from outside (squeue, the engine) and must not drive the terminal.
        cells: list[str | Text] = [
            r["key"],
            r["tasks"],
            Text(state, style=styles.get(r["state"], "")),
            progress,
            format_eta(r["eta_s"]),
            loss,
            Text(clean(detail, one_line=True)),
        ]
        if with_slurm:
            cells.append(Text(clean(slurm_label(r), one_line=True)))
        table.add_row(*cells)
    Console().print(table)
