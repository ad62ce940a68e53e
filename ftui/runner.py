"""The worker daemon: runs the queued jobs of one runs folder, detached from any terminal.

One worker per runs folder (an fcntl lock on `runs/.worker.lock`; a second worker exits quietly). It never
reads the registry: a job row and its run folder hold everything it needs, so queued work keeps running when
experiments.toml changes. Each engine process gets its own session and process group, stdin from /dev/null and
stdout+stderr appended to `RUN_DIR/train.log`; killing the worker (even with SIGKILL) leaves them running,
and the next worker adopts them (same pid AND same start time) instead of starting them twice.

    python -m ftui.runner RUNS_DIR [--idle-exit S] [--poll S]     (what `ensure_worker` starts)
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ftui import procs
from ftui.gpus import Slot, build_slots, detect_gpus, job_env
from ftui.store import CANCELLED, DONE, FAILED, RUNNING, Job, Store, StoreError

LOCK_NAME = ".worker.lock"
LOG_NAME = ".worker.log"
JOB_TAG = "FTUI_JOB"  # in each engine's environment: finds a process started just before a worker crash
DEFAULT_SETTINGS: dict[str, Any] = {
    "gpus": "auto",
    "jobs_per_gpu": 1,
    "cpu_jobs": 1,
    "on_worker_crash": "resume",
    "grace_s": 30.0,
    "executor": "local",
}


@dataclass
class Tracked:
    """A running engine process the worker watches: its child (popen) or one adopted from a dead worker."""

    job_id: int
    pid: int
    pid_start: int | None
    pgid: int
    slot: str
    popen: subprocess.Popen[bytes] | None
    kill_sent: bool = False


class WorkerLock:
    """The per-runs-folder worker lock; the file holds the owner's pid and start time."""

    def __init__(self, runs_dir: Path) -> None:
        self.path = Path(runs_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, wait_s: float = 0.25) -> bool:
        """Take the lock; False when another worker holds it. `worker_pid` probes it with a shared lock for a
        few microseconds, so a failure is retried for `wait_s` before conceding to another worker."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.01)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {procs.start_ticks(os.getpid())}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def worker_pid(runs_dir: Path) -> int | None:
    """The pid of the worker serving `runs_dir`, or None when none runs (the lock is free)."""
    path = Path(runs_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            parts = os.pread(fd, 64, 0).split()
            return int(parts[0]) if parts and parts[0].isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def ensure_worker(
    runs_dir: Path, *, idle_exit_s: float | None = None, poll_s: float | None = None
) -> int | None:
    """Start the detached worker for `runs_dir` unless one runs. Returns the new worker's pid, else None.

    Two callers racing both start one; the loser finds the lock taken and exits quietly."""
    runs_dir = Path(runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    if worker_pid(runs_dir) is not None:
        return None
    # Environment overrides, for tests and for impatient users (documented in docs/runner.md).
    if idle_exit_s is None and os.environ.get("FTUI_WORKER_IDLE_EXIT"):
        idle_exit_s = float(os.environ["FTUI_WORKER_IDLE_EXIT"])
    if poll_s is None and os.environ.get("FTUI_WORKER_POLL"):
        poll_s = float(os.environ["FTUI_WORKER_POLL"])
    cmd = [sys.executable, "-m", "ftui.runner", str(runs_dir)]
    if idle_exit_s is not None:
        cmd += ["--idle-exit", str(idle_exit_s)]
    if poll_s is not None:
        cmd += ["--poll", str(poll_s)]
    with open(runs_dir / LOG_NAME, "ab") as log:
        popen = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: closing the terminal or losing SSH does not reach it
            cwd=runs_dir,
            close_fds=True,
        )
    # A long-lived caller (the app) reaps it when it exits; a CLI exits first and init reaps it.
    threading.Thread(target=popen.wait, daemon=True).start()
    return popen.pid


def stop_worker(runs_dir: Path, timeout_s: float = 10.0) -> int | None:
    """Ask the worker to stop (SIGTERM; its running jobs keep running). Its pid, or None if none ran."""
    pid = worker_pid(runs_dir)
    if pid is None or pid <= 0:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + timeout_s
    while worker_pid(runs_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


class Worker:
    def __init__(
        self,
        runs_dir: Path,
        *,
        idle_exit_s: float = 10.0,
        poll_s: float = 0.2,
        gpus: Sequence[int] | None = None,
        log: TextIO | None = None,
        busy_timeout_s: float = 10.0,
    ) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.store = Store(self.runs_dir, busy_timeout_s=busy_timeout_s)
        self.idle_exit_s = idle_exit_s
        self.poll_s = poll_s
        self._gpus = list(gpus) if gpus is not None else None  # None: detect with nvidia-smi once
        self._log_stream = log or sys.stderr
        self.lock = WorkerLock(self.runs_dir)
        self.tracked: dict[int, Tracked] = {}
        self._wake = threading.Event()
        self._stop = False

    # ---- main loop --------------------------------------------------------------------------------------
    def run(self) -> int:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        if not self.lock.acquire():
            self.log(f"another worker serves {self.runs_dir} (pid {worker_pid(self.runs_dir)}); exiting")
            return 0
        self._install_signals()
        self.log(f"worker {os.getpid()} started for {self.runs_dir}")
        try:
            while not self._guard(self.reconcile, default=False):  # e.g. the database is locked: retry
                if self._stop:
                    return 0
                self._wake.wait(self.poll_s)
            idle_since: float | None = None
            while not self._stop:
                self._guard(self.step)
                busy = bool(self.tracked) or self._guard(self.store.has_pending, default=True)
                now = time.monotonic()
                if busy:
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                elif now - idle_since >= self.idle_exit_s and self._release_if_still_idle():
                    self.log("queue empty; exiting")
                    return 0
                self._wake.wait(self.poll_s)
                self._wake.clear()
            self.log(f"stopping; {len(self.tracked)} running job(s) keep running and will be adopted")
            return 0
        finally:
            self.lock.release()
            self.store.close()

    def _release_if_still_idle(self) -> bool:
        """Drop the lock, then look once more: a launch that saw the lock taken committed its jobs before we
        released it, so either we see them now, or the launch saw the lock free and started a new worker."""
        self.lock.release()
        if not self._guard(self.store.has_pending, default=True):
            return True
        if self.lock.acquire():
            return False
        return True  # another worker took over

    def step(self) -> None:
        """One pass: reap finished processes, pass on cancels, promote waiting jobs, start what fits."""
        self.reap()
        self.handle_cancels()
        self.store.schedule()
        self.start_jobs()

    def _guard(self, fn: Any, default: Any = None) -> Any:
        """Run one part of the loop; a locked database or a broken run folder is logged, never fatal."""
        try:
            return fn()
        except StoreError as e:
            self.log(f"store: {e}")
        except OSError as e:
            self.log(f"os error: {e}")
        return default

    def log(self, msg: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} [worker {os.getpid()}] {msg}", file=self._log_stream, flush=True)

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def stop(signum: int, frame: Any) -> None:
            self._stop = True
            self._wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        # A child exiting wakes the loop at once: a dependant starts without waiting for the next poll.
        signal.signal(signal.SIGCHLD, lambda signum, frame: self._wake.set())

    # ---- settings and slots -----------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        stored = self.store.settings("runner") or {}
        return DEFAULT_SETTINGS | {k: v for k, v in stored.items() if k in DEFAULT_SETTINGS}

    def slots(self, settings: dict[str, Any]) -> list[Slot]:
        gpus = settings["gpus"]
        if gpus == "auto" and self._gpus is None:
            self._gpus = detect_gpus()
            self.log(f"GPUs: {self._gpus or 'none (CPU jobs)'}")
        gpus = tuple(gpus) if isinstance(gpus, list) else gpus
        return build_slots(gpus, int(settings["jobs_per_gpu"]), int(settings["cpu_jobs"]), self._gpus)

    # ---- reconciling after a restart ----------------------------------------------------------------------
    def reconcile(self) -> bool:
        """Make the jobs marked running match reality: adopt live processes, settle vanished ones."""
        settings = self.settings()
        for job in self.store.jobs(states=[RUNNING]):
            pid, start = job.pid, job.pid_start
            if pid is None:  # the last worker died between claiming the job and recording its process
                found = procs.find_tagged(JOB_TAG, self._tag(job))
                if found:
                    pid, start = found[0], procs.start_ticks(found[0])
                    self.store.record_process(job.id, pid, start, os.getpgid(pid))
            if pid is not None and procs.is_alive(pid, start):
                self.tracked[job.id] = Tracked(job.id, pid, start, job.pgid or pid, job.slot or "cpu", None)
                self.store.record_process(
                    job.id, pid, start, job.pgid or pid, "running (adopted by a new worker)"
                )
                self.log(f"adopted {job.run_key} {job.action} (pid {pid})")
                continue
            if self._finished_on_disk(job):
                self.store.finish(job.id, DONE, "finished while no worker watched it")
            elif job.cancel_requested:
                self.store.finish(job.id, CANCELLED, "cancelled (process gone)")
            elif settings["on_worker_crash"] == "resume":
                self.store.requeue_interrupted(
                    job.id, "interrupted (worker crash); resuming from its checkpoint"
                )
                self.log(f"re-queued interrupted {job.run_key} {job.action}")
            else:
                self.store.finish(job.id, FAILED, "lost: its process ended while no worker watched it")
                self.log(f"lost {job.run_key} {job.action}")
        return True

    def _tag(self, job: Job) -> str:
        return f"{self.store.db_path}#{job.id}#{job.attempts}"

    def _finished_on_disk(self, job: Job) -> bool:
        run_dir = self.store.run_dir(job.rel_dir)
        if job.action == "train":
            return (run_dir / "checkpoints" / "final.pt").is_file()
        try:
            return (run_dir / "eval.json").stat().st_mtime >= (job.started or 0)
        except OSError:
            return False

    # ---- processes ----------------------------------------------------------------------------------------
    def reap(self) -> None:
        for job_id, t in list(self.tracked.items()):
            if t.popen is not None:
                rc = t.popen.poll()
                if rc is None:
                    continue
            elif procs.is_alive(t.pid, t.pid_start):
                continue
            else:
                rc = None  # adopted: not our child, so its exit status is unknown
            job = self.store.job(job_id)
            if job is None:
                del self.tracked[job_id]
                continue
            if procs.group_members(t.pgid):  # stragglers the engine left behind in its group
                procs.signal_group(t.pgid, signal.SIGKILL)
            state, reason, code, sig = self._outcome(job, rc)
            self.store.finish(job_id, state, reason, exit_code=code, signal=sig)
            del self.tracked[job_id]  # only after the outcome is committed (a locked db retries next pass)
            self.log(f"{job.run_key} {job.action}: {state} ({reason})")

    def _outcome(self, job: Job, rc: int | None) -> tuple[str, str, int | None, int | None]:
        code = rc if rc is not None and rc >= 0 else None
        sig = -rc if rc is not None and rc < 0 else None
        if job.cancel_requested:
            return CANCELLED, "cancelled by the user", code, sig
        if rc is None:
            if self._finished_on_disk(job):
                return DONE, "finished (adopted process; exit status unknown)", None, None
            return FAILED, f"adopted process ended without finishing{self._last_words(job)}", None, None
        if rc == 0:
            if self._finished_on_disk(job):
                return DONE, "exit 0", 0, None
            what = "checkpoints/final.pt" if job.action == "train" else "a new eval.json"
            return FAILED, f"exit 0 but no {what}", 0, None
        if sig is not None:
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            return FAILED, f"killed by {name}", None, sig
        if rc == 143:
            return FAILED, "terminated by SIGTERM (checkpoint saved)", rc, None
        label = "bad config" if rc == 2 else "exit"
        return FAILED, f"{label} {rc}{self._last_words(job)}", rc, None

    def _last_words(self, job: Job) -> str:
        """The last line of the run's log, so `ftui list` says why without opening it."""
        try:
            with open(self.store.run_dir(job.rel_dir) / "train.log", "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
                lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return f": {lines[-1][:200]}" if lines else ""

    def handle_cancels(self) -> None:
        if not self.tracked:
            return
        grace = float(self.settings()["grace_s"])
        now = time.time()
        for job in self.store.jobs(states=[RUNNING]):
            t = self.tracked.get(job.id)
            if t is None or not job.cancel_requested:
                continue
            if job.cancel_sent is None:
                procs.signal_group(t.pgid, signal.SIGTERM)
                self.store.mark_cancel_sent(job.id, now)
                self.log(f"cancel {job.run_key} {job.action}: SIGTERM to group {t.pgid}")
            elif not t.kill_sent and now - job.cancel_sent >= grace:
                procs.signal_group(t.pgid, signal.SIGKILL)
                t.kill_sent = True
                self.log(f"cancel {job.run_key} {job.action}: SIGKILL to group {t.pgid} after {grace:g} s")

    def start_jobs(self) -> None:
        settings = self.settings()
        if settings["executor"] != "local":
            return  # another executor's jobs: not this worker's to run
        capacity: dict[str, int] = {}
        for s in self.slots(settings):
            capacity[s.label] = capacity.get(s.label, 0) + 1
        for t in self.tracked.values():
            capacity[t.slot] = capacity.get(t.slot, 0) - 1
        slots_by_label = {s.label: s for s in self.slots(settings)}
        for job in self.store.jobs(states=["queued"]):
            free = [label for label, n in capacity.items() if n > 0]
            if not free:
                return
            label = max(free, key=lambda lb: capacity[lb])  # spread jobs over GPUs
            if self.start(job, slots_by_label[label]):
                capacity[label] -= 1

    def start(self, job: Job, slot: Slot) -> bool:
        run_dir = self.store.run_dir(job.rel_dir)
        claimed = self.store.claim(job.id, slot.label)
        if claimed is None:
            return False
        if not (run_dir / "config.toml").is_file():
            why = "run directory missing" if not run_dir.is_dir() else "config.toml missing"
            self.store.finish(job.id, FAILED, f"{why}: {run_dir} (run `ftui launch` to write it)")
            return False
        cmd = [sys.executable, "-m", "engine", job.action, str(run_dir)]
        if job.action == "train" and job.restart:
            cmd.append("--restart")
        env = job_env(os.environ, slot) | {JOB_TAG: self._tag(claimed), "PYTHONUNBUFFERED": "1"}
        try:
            with open(run_dir / "train.log", "ab") as log:
                header = f"\n==== ftui: {job.action} attempt {claimed.attempts} on {slot.label} at "
                log.write(f"{header}{time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
                log.flush()
                popen = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own group: cancel signals the whole group; survives the worker
                    cwd=run_dir,
                    env=env,
                    close_fds=True,  # never leak the worker lock into the engine
                )
        except OSError as e:
            self.store.finish(job.id, FAILED, f"could not start the engine: {e}")
            return False
        start = procs.start_ticks(popen.pid)
        self.tracked[job.id] = Tracked(job.id, popen.pid, start, popen.pid, slot.label, popen)
        self.store.record_process(job.id, popen.pid, start, popen.pid)
        self.log(f"started {job.run_key} {job.action} on {slot.label} (pid {popen.pid})")
        return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftui.runner", description="the ftui worker daemon")
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--idle-exit", type=float, default=10.0, help="exit after this many idle seconds")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between passes over the queue")
    args = parser.parse_args(argv)
    return Worker(args.runs_dir, idle_exit_s=args.idle_exit, poll_s=args.poll).run()


if __name__ == "__main__":
    sys.exit(main())
