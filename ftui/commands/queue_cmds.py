"""Queue commands: `launch`, `eval`, `cancel`, `retry`, `list`, `logs`, `worker`.

Exit codes: 0 ok, 1 failure (a locked database, nothing matched in the queue, a run not trained), 2 usage or
registry error. Nothing here imports torch; Rich is imported only to print the `list` table.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftui.queue.store import RUNNING, Store, StoreError
from ftui.rundir import EVENTS, LOG, is_evaluated, is_trained


class CommandError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("launch", help="queue training and evaluation (with missing dependencies)")
    p.add_argument("patterns", nargs="*", metavar="PATTERN", help="experiment names or run keys (globs)")
    p.add_argument(
        "--stale",
        action="store_true",
        help="re-run exactly the stale runs (matching PATTERN; all when none), parents first",
    )
    p.add_argument("--only", action="store_true", help="do not queue missing dependencies (parent training)")
    p.add_argument("--force", action="store_true", help="redo finished runs (training restarts from scratch)")
    p.add_argument(
        "--notify", action="store_true", help="wait, then send a desktop notification through the terminal"
    )
    _executor_option(p)
    p.set_defaults(func=_guarded(cmd_launch))

    p = subparsers.add_parser("eval", help="queue evaluation only")
    p.add_argument("patterns", nargs="+", metavar="PATTERN")
    p.add_argument("--force", action="store_true", help="re-evaluate runs that have an eval.json")
    _executor_option(p)
    p.set_defaults(func=_guarded(cmd_eval))

    p = subparsers.add_parser("cancel", help="cancel queued or running jobs (SIGTERM, then SIGKILL)")
    p.add_argument("patterns", nargs="+", metavar="PATTERN")
    p.add_argument("--wait", action="store_true", help="wait until the running ones have stopped")
    p.set_defaults(func=_guarded(cmd_cancel))

    p = subparsers.add_parser("retry", help="re-queue failed or cancelled jobs (training resumes)")
    p.add_argument("patterns", nargs="+", metavar="PATTERN")
    p.set_defaults(func=_guarded(cmd_retry))

    p = subparsers.add_parser(
        "list",
        help="one line per run (state, progress, ETA, loss, result) that fits the terminal; runs per state,"
        " the time until the queue is empty and the worker's heartbeat",
    )
    p.add_argument("patterns", nargs="*", metavar="PATTERN")
    p.add_argument(
        "--json", action="store_true", help='{"worker": {...}, "summary": {...}, "runs": [{pid, GPU, ...}]}'
    )
    p.add_argument(
        "--wide", action="store_true", help="every column in full (tasks, Slurm job, the whole result)"
    )
    p.set_defaults(func=_guarded(cmd_list))

    p = subparsers.add_parser("logs", help="print a run's log; -f follows it (Ctrl+C stops following only)")
    p.add_argument("name", metavar="NAME", help="run key or experiment name")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--lines", type=int, default=None, help="only the last N lines")
    p.set_defaults(func=_guarded(cmd_logs))

    p = subparsers.add_parser("worker", help="run the worker in the foreground (normally started for you)")
    p.add_argument("--stop", action="store_true", help="stop the running worker (its jobs keep running)")
    p.add_argument(
        "--idle-exit", type=float, default=0.0, help="exit after this many idle seconds (0: never)"
    )
    p.set_defaults(func=_guarded(cmd_worker))


def _executor_option(p: argparse.ArgumentParser) -> None:
    from ftui.queue.store import EXECUTORS

    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="where the queued jobs run: local processes or Slurm jobs (default: [runner] executor)",
    )


def _guarded(fn: Any) -> Any:
    """Map expected errors to a message on stderr and an exit code (never a traceback for bad input)."""

    def run(args: argparse.Namespace) -> int:
        from ftui.registry import RegistryError

        try:
            result: int = fn(args)
            return result
        except RegistryError as e:
            print(str(e), file=sys.stderr)
            return 2
        except CommandError as e:
            print(f"ftui: {e}", file=sys.stderr)
            return e.code
        except StoreError as e:
            print(f"ftui: {e}", file=sys.stderr)
            return 1
        except BrokenPipeError:  # stdout's reader has gone (`| head`): ftui/stdio.py ends quietly, exit 0
            raise
        except OSError as e:  # a config.toml that cannot be written: read-only or full disk, permissions
            where = f"{e.filename}: " if e.filename else ""
            print(f"ftui: {where}{e.strerror or e}", file=sys.stderr)
            return 1
        except Exception as e:
            # A LaunchError comes from ftui.queue.launching, loaded only by the commands that launch (`ftui
            # list` need not import it to recognise an error it cannot raise).
            launching = sys.modules.get("ftui.queue.launching")
            if launching is None or not isinstance(e, launching.LaunchError):
                raise
            print(f"ftui: {e}", file=sys.stderr)
            return 2

    run.__name__ = fn.__name__
    return run


# ---- registry and runs folder ------------------------------------------------------------------------------
def _registry(args: argparse.Namespace, required: bool) -> Any:
    from ftui.registry import load_registry

    path = Path(args.registry)
    if not path.exists():
        if required:
            raise CommandError(f"{path}: registry file not found (use --registry FILE)")
        return None
    registry = load_registry(path)
    registry.profile(getattr(args, "profile", None))  # every command refuses a --profile typo (RegistryError)
    return registry


def _runs_dir(args: argparse.Namespace, registry: Any) -> Path:
    if args.runs is not None:
        return Path(args.runs)
    if registry is not None:
        return Path(registry.runs_dir())
    return Path("runs")


def _match_keys(patterns: Sequence[str], store: Store, registry: Any) -> list[str]:
    """Run keys matching the patterns in the queue or the registry; a pattern matching neither is an error."""
    from ftui.registry import RegistryError

    keys: list[str] = []
    for pattern in patterns:
        found = store.match_keys([pattern])
        if registry is not None:
            try:
                found += [r.key for r in registry.runs([pattern])]
            except RegistryError:
                if not found:
                    raise
        if not found:
            raise CommandError(f"{pattern!r} matches no run in the queue {store.db_path}", 1)
        keys.extend(found)
    return list(dict.fromkeys(keys))


# ---- commands ----------------------------------------------------------------------------------------------
def cmd_launch(args: argparse.Namespace, actions: Sequence[str] = ("train", "eval")) -> int:
    from ftui.queue.launching import launch

    registry = _registry(args, required=True)
    if getattr(args, "stale", False):
        return _launch_stale(args, registry)
    if not args.patterns:
        raise CommandError("launch needs a PATTERN (experiment names or run keys), or --stale")
    runs = registry.runs(args.patterns)
    report = launch(
        registry,
        runs,
        _runs_dir(args, registry),
        profile=args.profile,
        actions=actions,
        only=getattr(args, "only", False),
        force=args.force,
        executor=args.executor,
    )
    return _reported(args, registry, report)


def _reported(args: argparse.Namespace, registry: Any, report: Any) -> int:
    """Print a launch's report; exit 1 when something was refused or cannot be evaluated. `--notify` waits."""
    print(report.summary())
    code = 1 if report.not_trained or report.result.refused else 0
    if getattr(args, "notify", False):
        from ftui.notify import wait_and_notify

        return max(code, wait_and_notify(Store(_runs_dir(args, registry)), report.result))
    return code


def _launch_stale(args: argparse.Namespace, registry: Any) -> int:
    from ftui.queue.launching import launch_stale

    if args.only or args.force:
        raise CommandError("--stale chooses what to redo itself: leave out --only and --force")
    done = launch_stale(
        registry, registry.runs(args.patterns), _runs_dir(args, registry), profile=args.profile,
        executor=args.executor,
    )  # fmt: skip
    if done.busy:
        print(f"stale, but already queued or running, left alone: {', '.join(done.busy)}")
    if not done.stale:
        if not done.busy:
            print("no stale run" + (f" matches {' '.join(args.patterns)}" if args.patterns else ""))
        return 0
    for key, why in done.stale.items():
        print(f"stale: {key} ({why.reason}): {'train + eval' if why.retrain else 'eval'}")
    return _reported(args, registry, done.report)


def cmd_eval(args: argparse.Namespace) -> int:
    return cmd_launch(args, actions=("eval",))


def _store_and_keys(args: argparse.Namespace) -> tuple[Store, list[str]]:
    """The runs folder's queue and the run keys the patterns match (no registry needed: jobs outlive it)."""
    registry = _registry(args, required=False)
    store = Store(_runs_dir(args, registry))
    return store, _match_keys(args.patterns, store, registry)


def cmd_cancel(args: argparse.Namespace) -> int:
    from ftui.queue.worker import start_worker

    store, keys = _store_and_keys(args)
    changed = store.cancel(keys)
    if not changed:
        print("nothing to cancel: no queued or running job matches")
        return 0
    running = [j for j in changed if j.state == RUNNING]
    print(f"cancelled {len(changed) - len(running)} queued job(s)")
    if running:
        # The worker signals the process groups; start one if it died or is stuck (it adopts the running
        # processes).
        if note := start_worker(store.runs_dir).note:
            print(note)
        grace = (store.settings("runner") or {}).get("grace_s", 30.0)
        print(
            f"stopping {len(running)} running job(s): "
            + ", ".join(f"{j.run_key} {j.action}" for j in running)
            + f" (SIGTERM, SIGKILL after {grace:g} s)"
        )
        if args.wait:
            ids = {j.id for j in running}
            deadline = time.monotonic() + float(grace) + 30.0
            while any(j.state == RUNNING for j in store.jobs(states=[RUNNING]) if j.id in ids):
                if time.monotonic() > deadline:
                    raise CommandError("cancelled jobs are still running; see runs/.worker.log", 1)
                time.sleep(0.1)
            print("stopped")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from ftui.queue.worker import start_worker

    store, keys = _store_and_keys(args)
    requeued = store.retry(keys)
    if not requeued:
        print("nothing to retry: no failed, cancelled or blocked job matches")
        return 0
    print(f"re-queued {len(requeued)} job(s): " + ", ".join(f"{j.run_key} {j.action}" for j in requeued))
    if summary := start_worker(store.runs_dir).summary():
        print(summary)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    # Thousands of runs make hundreds of thousands of small objects, which set off the cycle collector again
    # and again (a quarter of the time of a 5,000-run listing); a listing makes no garbage cycles.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _list(args)
    finally:
        if enabled:
            gc.enable()


def _list(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ftui.queue.heartbeat import worker_status
    from ftui.queue_eta import estimate_queue
    from ftui.run_cache import RunFolderCache, few_runs
    from ftui.state_display import state_counts
    from ftui.status import json_rows, rows_from

    registry = _registry(args, required=True)
    runs = registry.runs(args.patterns)
    store = Store(_runs_dir(args, registry))
    # Every run of the registry: one query of the whole queue (cheaper than thousands of keys in SQL).
    listed = [r.key for r in runs] if args.patterns else None
    # One look, no loss history needed; what the run folders said last time, re-read where they changed
    # (a few runs chosen by pattern: their files only, `ftui list RUN` in a sweep of thousands).
    cache = RunFolderCache(store.runs_dir, history=1, use_file=not (args.patterns and few_runs(len(runs))))
    now = time.time()
    if args.json:  # each run's line too, remembered by the cache while the run's files and jobs are the same
        per_state = store.job_counts()
        lines = json_rows(registry, store, runs, store.job_briefs(listed), cache, now)
        rows: list[Any] = [row for row, _ in lines]
    else:
        jobs, per_state = store.listing_jobs(listed)
        rows = rows_from(registry, store.runs_dir, runs, jobs, cache.progress, cache.results, now)
    # Browsing only (--read-only, or a results archive: cli.RESULTS_MARKER) leaves the folder as it is.
    if not (getattr(args, "read_only", False) or (store.runs_dir / "RESULTS.json").is_file()):
        cache.save()
    queued = per_state.get("queued", 0) + per_state.get("waiting", 0)
    worker = replace(worker_status(store.runs_dir), queued=queued, running=per_state.get(RUNNING, 0))
    paused = store.paused()  # `ftui pause`
    kinds = {run.key: (run.experiment.family or run.experiment.name, run.experiment.kind) for run in runs}
    estimate = estimate_queue(rows, kinds, now)
    if args.json:
        total, counts = state_counts(r.state for r in rows)
        summary_json = json.dumps({"runs": total, "states": counts} | estimate.to_json())
        # One run per line, each encoded by the C encoder (indent= would use the slow pure-Python one).
        runs_json = ",\n".join(text for _, text in lines)
        worker_json = json.dumps(worker.to_json() | {"paused": paused})
        sys.stdout.write(
            f'{{"worker": {worker_json},\n"summary": {summary_json},\n"runs": [\n{runs_json}\n]}}\n'
        )
        return 0
    from ftui.list_lines import output_width, print_lines
    from ftui.state_display import counts_line
    from ftui.status import print_table

    hint = ""
    if worker.pid is None and worker.needs_attention:
        hint = " (`ftui launch PATTERN` again, or `ftui worker`, starts one)"
    elif worker.pid is not None and worker.state == "running":
        hint = f" ({worker.activity})"
    # With patterns the estimate covers the listed runs' jobs only: other jobs may keep the queue busy.
    ending = estimate.text(some_runs=bool(args.patterns))
    summary = [f"{counts_line(r.state for r in rows)}; {ending}", worker.line() + hint]
    if paused:
        summary.append("queue paused: no new job starts (`ftui resume` continues)")
    if args.wide:
        print_table(rows, store.runs_dir)
        print("\n".join(summary))
    else:
        print_lines(rows, store.runs_dir, summary, output_width())
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from ftui.commands.logs_cmd import follow_log
    from ftui.registry import RegistryError

    registry = _registry(args, required=False)
    runs_dir = _runs_dir(args, registry)
    run_dir, key = runs_dir / args.name, args.name
    if registry is not None:
        try:
            run = registry.run(args.name)
            run_dir, key = runs_dir / run.rel_dir, run.key
        except RegistryError:
            if not run_dir.is_dir():
                raise
    log = run_dir / LOG
    if not log.exists() and not args.follow:
        if is_trained(run_dir) or is_evaluated(run_dir):  # e.g. results brought back by scripts/sweep.py
            raise CommandError(
                f"{log}: this finished run's folder holds no log (a results archive keeps eval.json, "
                f"config.toml and the end of {EVENTS} only)",
                1,
            )
        raise CommandError(f"{log}: no log yet (the run has not started)", 1)

    def is_running() -> bool | None:
        """Whether a job of the run is running now (None when the queue cannot say): for the Ctrl+C note."""
        try:
            return bool(Store(runs_dir).jobs(run_keys=[key], states=[RUNNING]))
        except Exception:  # the note only: never a traceback after Ctrl+C
            return None

    return follow_log(log, args.follow, args.lines, run_key=key, is_running=is_running)


def cmd_worker(args: argparse.Namespace) -> int:
    from ftui.queue.heartbeat import worker_status
    from ftui.queue.worker import Worker, kill_stuck, stop_worker, worker_pid

    registry = _registry(args, required=False)
    runs_dir = _runs_dir(args, registry)
    if args.stop:
        pid = stop_worker(runs_dir)
        if pid is None:
            print("no worker running")
            return 0
        if worker_pid(runs_dir) == pid:
            raise CommandError(f"worker {pid} did not stop (see {runs_dir / '.worker.log'})", 1)
        print(f"worker {pid} stopped (its running jobs keep running)")
        return 0
    replacing = None
    status = worker_status(runs_dir)
    if status.stuck:  # take over from a stuck worker, as `ftui launch` would
        if not kill_stuck(runs_dir, status):
            raise CommandError(f"{status.line()}; could not stop it", 1)
        assert status.pid is not None and status.beat_age_s is not None
        replacing = (status.pid, status.beat_age_s)
        print(f"worker {status.pid} was not responding for {status.beat_age_s:.0f} s: killed it")
    idle = args.idle_exit if args.idle_exit > 0 else float("inf")
    return Worker(runs_dir, idle_exit_s=idle, replacing=replacing).run()
