"""Queueing runs: the one code path behind `ftui launch`, `ftui launch --stale`, `ftui eval` and the app's
launch key.

Order of work, so that a bad registry or a config clash queues nothing: plan the jobs (dependencies first),
write every config.toml that a queued job will read, record the runner settings, then queue everything in one
transaction, then make sure a worker runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftui.queue.store import EXECUTORS, OPEN_STATES, PENDING_STATES, RUNNING, EnqueueResult, JobSpec, Store
from ftui.rundir import has_config, is_trained
from ftui.staleness import Stale, StaleRuns, dependency_order

if TYPE_CHECKING:
    from ftui.registry import Registry
    from ftui.registry.records import Run, RunnerSettings


class LaunchError(Exception):
    """A launch that was refused before anything was queued (message names the run and the reason)."""


@dataclass
class LaunchReport:
    result: EnqueueResult
    not_trained: list[str]  # `eval` of runs with no final checkpoint and no training queued
    worker_pid: int | None  # the worker started for this launch (None: one was already running)
    worker_note: str = ""  # a stuck worker replaced (or one that could not be stopped)

    def summary(self) -> str:
        r = self.result
        lines = []
        if r.queued:
            lines.append(
                f"queued {len(r.queued)} job(s): " + _names(f"{j.run_key} {j.action}" for j in r.queued)
            )
        if r.kept:
            lines.append(f"already queued or running, left alone: {len(r.kept)} job(s)")
        if r.skipped:
            lines.append(f"already done, skipped (use --force to redo): {len(r.skipped)} job(s)")
        for _spec, why in r.refused:
            lines.append(f"refused: {why}")
        for key in self.not_trained:
            lines.append(
                f"not evaluated: {key} has no checkpoints/final.pt (train it with `ftui launch {key}`)"
            )
        if not lines:
            lines.append("nothing to do")
        if self.worker_note:
            lines.append(self.worker_note)
        if self.worker_pid is not None:
            lines.append(f"worker started (pid {self.worker_pid})")
        return "\n".join(lines)


@dataclass
class StaleLaunch:
    """What `launch_stale` did: the launch's report, the stale runs it re-runs (in dependency order, with
    why), and the stale runs it left alone because a job of theirs is queued or running."""

    report: LaunchReport
    stale: dict[str, Stale]
    busy: list[str]


def _names(items: Any, limit: int = 8) -> str:
    names = list(items)
    return ", ".join(names[:limit]) + (f", … (+{len(names) - limit})" if len(names) > limit else "")


def plan(
    registry: Registry, runs: Sequence[Run], actions: Sequence[str], *, only: bool, force: bool
) -> list[JobSpec]:
    """Job specs for `runs`, dependencies first: each run's train (after its parent's train) and/or eval
    (after its own train). Without `only`, the parents' trainings are planned too (never forced)."""
    specs: dict[tuple[str, str], JobSpec] = {}

    def add_train(run: Run, forced: bool, with_parents: bool) -> None:
        parents = registry.dependencies(run)
        if with_parents:
            for parent in parents:
                add_train(parent, False, True)
        needs = tuple((p.key, "train") for p in parents)
        key = (run.key, "train")
        if key not in specs or (forced and not specs[key].force):
            specs[key] = JobSpec(run.key, run.experiment.name, run.rel_dir, "train", needs, forced)

    for run in runs:
        if "train" in actions:
            add_train(run, force, not only)
        if "eval" in actions:
            specs[(run.key, "eval")] = JobSpec(
                run.key, run.experiment.name, run.rel_dir, "eval", ((run.key, "train"),), force
            )
    return list(specs.values())


def launch(
    registry: Registry,
    runs: Sequence[Run],
    runs_dir: Path,
    *,
    profile: str | None = None,
    actions: Sequence[str] = ("train", "eval"),
    only: bool = False,
    force: bool = False,
    start_worker: bool = True,
    store: Store | None = None,
    executor: str | None = None,
) -> LaunchReport:
    """Queue `actions` for `runs` (registry Run objects) with their missing dependencies. Raises LaunchError
    (nothing queued) for an unknown executor or a forced redo of a running job, and the registry's
    RegistryError for a bad config or a config clash. `executor` overrides [runner] executor for the jobs
    this launch queues (jobs already queued keep theirs)."""
    settings = _settings(registry, executor, profile)
    store = store or Store(Path(runs_dir))
    specs = plan(registry, runs, actions, only=only, force=force)
    return _queue(registry, specs, Path(runs_dir), settings, profile, store, start_worker)


def launch_stale(
    registry: Registry,
    runs: Sequence[Run],
    runs_dir: Path,
    *,
    profile: str | None = None,
    start_worker: bool = True,
    store: Store | None = None,
    executor: str | None = None,
) -> StaleLaunch:
    """`ftui launch --stale`: re-run exactly the stale ones among `runs` (ftui/staleness.py) and their stale
    ancestors (a child re-run before its stale parent would start from the old weights again), parents
    first. A run whose weights are stale is trained again from scratch (`--restart`) and evaluated; a run
    whose eval.json alone is stale is evaluated again. Runs with a queued or running job are left alone."""
    settings = _settings(registry, executor, profile)
    store = store or Store(Path(runs_dir))
    every = registry.all_runs()
    judge = StaleRuns(runs_dir, every, store.run_status, store.run_results)
    busy = {job.run_key for job in store.jobs(states=PENDING_STATES)}
    stale: dict[str, Stale] = {}
    busy_stale: list[str] = []
    for run in runs:
        lineage = [run]
        while lineage[-1].parent_key is not None:
            lineage.append(registry.run(lineage[-1].parent_key))
        for found in reversed(lineage):  # ancestors first
            verdict = judge.check(found.key)
            if verdict is not None and (found is run or verdict.retrain):
                if found.key in busy:
                    busy_stale.append(found.key)
                else:
                    stale[found.key] = verdict
    order = dependency_order(stale, every)
    stale = {key: stale[key] for key in order}
    retrain = [registry.run(k) for k in order if stale[k].retrain]
    reevaluate = [registry.run(k) for k in order if not stale[k].retrain]
    specs = plan(registry, retrain, ("train", "eval"), only=True, force=True)
    specs += plan(registry, reevaluate, ("eval",), only=True, force=True)
    report = _queue(registry, specs, Path(runs_dir), settings, profile, store, start_worker)
    return StaleLaunch(report, stale, list(dict.fromkeys(busy_stale)))


def _settings(registry: Registry, executor: str | None, profile: str | None) -> RunnerSettings:
    settings = registry.runner
    if executor is not None:
        if executor not in EXECUTORS:
            raise LaunchError(f"unknown executor {executor!r} (allowed: {', '.join(EXECUTORS)})")
        settings = replace(settings, executor=executor)
    registry.profile(profile)  # an unknown profile is an error even when everything is already done
    return settings


def _queue(
    registry: Registry,
    planned: Sequence[JobSpec],
    runs_dir: Path,
    settings: RunnerSettings,
    profile: str | None,
    store: Store,
    start_worker: bool,
) -> LaunchReport:
    """Write the configs the planned jobs read, then queue them in one transaction and start a worker."""
    from ftui.queue.worker import WorkerStart
    from ftui.queue.worker import start_worker as start_worker_for
    from ftui.registry import write_run_config

    specs = [replace(s, executor=settings.executor) for s in planned]
    jobs = {(j.run_key, j.action): j for j in store.jobs(run_keys={s.run_key for s in specs})}
    running = [s for s in specs if s.force and (j := jobs.get((s.run_key, s.action))) and j.state == RUNNING]
    if running:
        raise LaunchError(
            "refusing --force on running job(s): "
            + ", ".join(f"{s.run_key} {s.action}" for s in running)
            + " (cancel them first)"
        )
    by_key = {r.key: r for r in registry.all_runs()}
    not_trained: list[str] = []
    kept_specs: list[JobSpec] = []
    planned_train = {s.run_key for s in specs if s.action == "train"}
    for spec in specs:
        run_dir = runs_dir / spec.rel_dir
        train_open = (spec.run_key, "train") in jobs and jobs[(spec.run_key, "train")].state in OPEN_STATES
        if (
            spec.action == "eval"
            and spec.run_key not in planned_train
            and not is_trained(run_dir)
            and not train_open
        ):
            not_trained.append(spec.run_key)
            continue
        kept_specs.append(spec)
    # Write the configs first: a registry error or a clash raises here, before anything is queued. A trained
    # run keeps the config it was trained with (unless forced), so an eval reads what the weights came from.
    for key in dict.fromkeys(s.run_key for s in kept_specs):
        run_dir = runs_dir / by_key[key].rel_dir
        forced = any(s.force for s in kept_specs if s.run_key == key)
        if forced or not is_trained(run_dir) or not has_config(run_dir):
            write_run_config(registry, by_key[key], runs_dir, profile, force=forced)
    store.set_setting("runner", _settings_dict(settings))
    result = store.enqueue(kept_specs)
    started = WorkerStart(None)
    if start_worker and (result.queued or result.kept):
        started = start_worker_for(runs_dir)
    return LaunchReport(result, not_trained, started.pid, started.note)


def _settings_dict(settings: RunnerSettings) -> dict[str, Any]:
    data = asdict(settings)
    if isinstance(data.get("gpus"), tuple):
        data["gpus"] = list(data["gpus"])
    return data
