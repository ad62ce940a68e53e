"""Queue control: `pause`, `resume`, `rm`, `clean`, `wait`.

`pause` is a flag in the queue database (settings table), so the worker honours it across restarts; running
jobs go on. `rm` removes run folders and their queue rows, never a running run. `clean` deletes intermediate
checkpoints of finished trainings. `wait` blocks until matching jobs end (exit 0: all done; 1: any failed,
was cancelled or is blocked), for scripts.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from ftui.commands.queue_cmds import CommandError, _guarded, _match_keys, _registry, _runs_dir
from ftui.queue.store import RUNNING, Store

STEP_CHECKPOINTS = "step-*.pt"  # engine/checkpoint.py: checkpoints/step-00001000.pt ... and final.pt


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("pause", help="start no new job (running ones go on), until `ftui resume`")
    p.set_defaults(func=_guarded(cmd_pause))

    p = subparsers.add_parser("resume", help="let the worker start queued jobs again")
    p.set_defaults(func=_guarded(cmd_resume))

    p = subparsers.add_parser("rm", help="remove run folders and their queue rows (never a running run)")
    p.add_argument("patterns", nargs="+", metavar="PATTERN", help="experiment names or run keys (globs)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p.set_defaults(func=_guarded(cmd_rm))

    p = subparsers.add_parser("clean", help="delete intermediate checkpoints of finished trainings")
    p.add_argument("patterns", nargs="*", metavar="PATTERN", help="default: every run")
    p.add_argument(
        "--keep", choices=["final"], default="final", help="what to keep: final (checkpoints/final.pt)"
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    p.set_defaults(func=_guarded(cmd_clean))

    p = subparsers.add_parser(
        "wait", help="block until the matching jobs end (exit 0: all done; 1: any failed or cancelled)"
    )
    p.add_argument("patterns", nargs="+", metavar="PATTERN")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (exit 1)")
    p.set_defaults(func=_guarded(cmd_wait))


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def _store(args: argparse.Namespace) -> Store:
    return Store(_runs_dir(args, _registry(args, required=False)))


# ---- pause / resume ----------------------------------------------------------------------------------------
def cmd_pause(args: argparse.Namespace) -> int:
    store = _store(args)
    store.set_paused(True)
    running = store.jobs(states=[RUNNING])
    print(f"queue paused: no new job starts; {len(running)} running job(s) go on (`ftui resume` continues)")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from ftui.queue.worker import start_worker

    store = _store(args)
    store.set_paused(False)
    print("queue resumed")
    if store.has_pending() and (summary := start_worker(store.runs_dir).summary()):
        print(summary)
    return 0


# ---- rm ----------------------------------------------------------------------------------------------------
def _run_folders(args: argparse.Namespace, patterns: list[str]) -> tuple[Store, dict[str, Path]]:
    """The matching runs (registry and queue) and their folders, checked to lie inside the runs folder."""
    registry = _registry(args, required=False)
    store = Store(_runs_dir(args, registry))
    keys = _match_keys(patterns, store, registry)
    folders: dict[str, Path] = {}
    for job in store.jobs(run_keys=keys):
        folders.setdefault(job.run_key, store.run_dir(job.rel_dir))
    if registry is not None:
        for run in registry.runs(["*"]):
            if run.key in keys:
                folders.setdefault(run.key, store.run_dir(run.rel_dir))
    for key in keys:
        folders.setdefault(key, store.run_dir(key))
    root = store.runs_dir.resolve()
    for key, folder in folders.items():
        resolved = folder.resolve()
        if resolved == root or root not in resolved.parents:
            raise CommandError(f"{key}: its folder {folder} is not inside the runs folder {root}", 2)
    return store, folders


def folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            pass
    return total


def cmd_rm(args: argparse.Namespace) -> int:
    store, folders = _run_folders(args, args.patterns)
    running = [f"{j.run_key} {j.action}" for j in store.jobs(run_keys=folders, states=[RUNNING])]
    if running:
        raise CommandError(f"refused: running now: {', '.join(running)} (`ftui cancel` it first)", 1)
    present = {k: f for k, f in folders.items() if f.exists()}
    rows = store.jobs(run_keys=folders)
    if not present and not rows:
        print("nothing to remove: no folder and no queue row for " + ", ".join(folders))
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError("rm asks before deleting; add --yes to remove without asking", 2)
        print(f"remove {len(present)} run folder(s) and {len(rows)} queue row(s):")
        for key, folder in folders.items():
            print(f"  {key}: {folder}" + ("" if folder.exists() else " (no folder)"))
        if input("remove them? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 1
    removed_rows = store.remove(list(folders))  # first: refuses (nothing deleted) if one started meanwhile
    freed = 0
    for key, folder in folders.items():
        n_rows = sum(1 for j in removed_rows if j.run_key == key)
        if folder.exists():
            size = folder_bytes(folder)
            shutil.rmtree(folder)
            freed += size
            _remove_empty_parent(folder, store.runs_dir)
            print(f"removed {key}: {folder} ({human_bytes(size)}), {n_rows} queue row(s)")
        elif n_rows:
            print(f"removed {key}: {n_rows} queue row(s) (it had no folder)")
    print(f"removed {len(folders)} run(s), freed {human_bytes(freed)}")
    return 0


def _remove_empty_parent(folder: Path, runs_dir: Path) -> None:
    """`runs/exp/seed-1` removed: drop `runs/exp` too once it is empty."""
    parent = folder.parent
    if parent.resolve() != runs_dir.resolve():
        try:
            parent.rmdir()
        except OSError:
            pass  # not empty (other seeds): keep it


# ---- clean -------------------------------------------------------------------------------------------------
def cmd_clean(args: argparse.Namespace) -> int:
    store, folders = _run_folders(args, args.patterns or ["*"])
    training = {j.run_key for j in store.jobs(run_keys=folders, states=[RUNNING]) if j.action == "train"}
    freed, files, cleaned = 0, 0, 0
    verb = "would delete" if args.dry_run else "deleted"
    for key, folder in folders.items():
        ckpts = folder / "checkpoints"
        steps = sorted(ckpts.glob(STEP_CHECKPOINTS)) if ckpts.is_dir() else []
        if not steps:
            continue
        if key in training:
            print(f"kept {key}: training is running")
            continue
        if not (ckpts / "final.pt").is_file():
            print(f"kept {key}: no final.pt yet (a resumed training needs its step checkpoints)")
            continue
        size = 0
        for path in steps:
            size += path.stat().st_size
            if not args.dry_run:
                path.unlink()
        freed, files, cleaned = freed + size, files + len(steps), cleaned + 1
        print(f"{verb} {len(steps)} checkpoint(s) of {key} ({human_bytes(size)})")
    gain = "would free" if args.dry_run else "freed"
    print(f"{verb} {files} checkpoint(s) in {cleaned} run(s); {gain} {human_bytes(freed)} ({freed} bytes)")
    return 0


# ---- wait --------------------------------------------------------------------------------------------------
def cmd_wait(args: argparse.Namespace) -> int:
    from ftui.queue.wait import wait_for_jobs

    registry = _registry(args, required=False)
    store = Store(_runs_dir(args, registry))
    keys = _match_keys(args.patterns, store, registry)
    jobs = store.jobs(run_keys=keys)
    if not jobs:
        raise CommandError("no job in the queue matches (launch it first: `ftui launch PATTERN`)", 1)
    from ftui.queue.heartbeat import worker_status
    from ftui.queue.store import PENDING_STATES

    status = worker_status(store.runs_dir, store.jobs(states=PENDING_STATES))
    if status.needs_attention:  # waiting on a queue nobody serves would block for ever: say so
        print(f"{status.line()} (`ftui worker`, or `ftui launch PATTERN` again, starts one)", flush=True)
    try:
        result = wait_for_jobs(
            store, [j.id for j in jobs], lambda line: print(line, flush=True), timeout_s=args.timeout
        )
    except KeyboardInterrupt:
        print("stopped waiting (the jobs go on)", file=sys.stderr)
        return 130
    print(result.summary())
    return 0 if result.ok else 1
