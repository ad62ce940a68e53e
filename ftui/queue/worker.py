"""The worker daemon: runs the queued jobs of one runs folder, detached from any terminal.

One worker per runs folder (an fcntl lock on `runs/.worker.lock`; a second worker exits quietly). It beats a
heartbeat on each pass (heartbeat); one that holds the lock but has stopped beating is replaced by the
next `start_worker`. Its signal handlers only set a flag; signals wake its sleep through a pipe (wakeup).
It never reads the registry: a job row and its run folder hold everything it needs, so queued work keeps
running when experiments.toml changes. The worker keeps the queue (dependencies, states, retries); each job's
executor runs it: `local` engine processes (executors.local: own session and process group, adopted by
the next worker after a crash) or `slurm` batch jobs (executors.slurm: submitted when ready, polled,
scancel).

    python -m ftui.queue.worker RUNS_DIR [--idle-exit S] [--poll S]     (what `start_worker` starts)
"""

from __future__ import annotations

import argparse
import dataclasses
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

from ftui.queue import heartbeat, procs
from ftui.queue.executors.base import JOB_TAG, Executor, finished_on_disk, signal_name
from ftui.queue.executors.local import LocalExecutor, Tracked
from ftui.queue.executors.slurm import SlurmExecutor
from ftui.queue.gpus import Gpu, Slot, build_slots, choose_gpus
from ftui.queue.heartbeat import LOCK_NAME
from ftui.queue.model import LOST
from ftui.queue.store import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    Job,
    Store,
    StoreError,
    StoreReplaced,
)
from ftui.queue.wakeup import Wakeup
from ftui.rundir import has_config

__all__ = [
    "JOB_TAG",
    "LOCK_NAME",
    "LOG_NAME",
    "Tracked",
    "Worker",
    "WorkerStart",
    "ensure_worker",
    "start_worker",
    "stop_worker",
    "worker_pid",
]

LOG_NAME = ".worker.log"
LOCAL_EXECUTORS = ("local",)  # the executors whose jobs take a slot here (Slurm jobs run elsewhere)
DEFAULT_SETTINGS: dict[str, Any] = {
    "gpus": "auto",
    "jobs_per_gpu": 1,
    "cpu_jobs": 1,
    "on_worker_crash": "resume",
    "grace_s": 30.0,
    "executor": "local",
    "slurm": {},
}


class WorkerLock:
    """The per-runs-folder worker lock; the file holds the owner's pid and start time."""

    def __init__(self, runs_dir: Path) -> None:
        self.path = Path(runs_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

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
    """The pid of the worker serving `runs_dir` (-1: unreadable); None when none runs (the lock is free)."""
    holder = heartbeat.lock_holder(runs_dir)
    return None if holder is None else holder.pid


@dataclass(frozen=True)
class WorkerStart:
    """What `start_worker` did: started a worker (pid), and whether it first replaced a stuck one."""

    pid: int | None  # None: a healthy worker already serves the folder (or a stuck one could not be stopped)
    note: str = ""  # for the user: a stuck worker replaced, or one that could not be stopped

    def summary(self) -> str:
        lines = [self.note] if self.note else []
        if self.pid is not None:
            lines.append(f"worker started (pid {self.pid})")
        return "\n".join(lines)


def ensure_worker(
    runs_dir: Path, *, idle_exit_s: float | None = None, poll_s: float | None = None
) -> int | None:
    """Start the detached worker for `runs_dir` unless a healthy one runs. Returns the new worker's pid."""
    return start_worker(runs_dir, idle_exit_s=idle_exit_s, poll_s=poll_s).pid


def start_worker(
    runs_dir: Path,
    *,
    idle_exit_s: float | None = None,
    poll_s: float | None = None,
    stuck_after_s: float | None = None,
) -> WorkerStart:
    """Start the detached worker for `runs_dir` unless a healthy one runs. A worker that holds the lock but
    has not beaten for `stuck_after_s` (default: heartbeat.stuck_after_s()) is killed first (SIGKILL: it is
    stuck, a polite signal would wait in its queue); the new worker adopts its running engines.

    Two callers racing both start one; the loser finds the lock taken and exits quietly."""
    runs_dir = Path(runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    status = heartbeat.worker_status(runs_dir, stuck_after=stuck_after_s)
    replaced: list[str] = []
    if status.pid is not None:
        if not status.stuck:
            return WorkerStart(None)
        if not kill_stuck(runs_dir, status):
            return WorkerStart(None, f"{status.line()}; could not stop it (see {runs_dir / LOG_NAME})")
        assert status.beat_age_s is not None
        replaced = ["--replacing", str(status.pid), "--silent-for", f"{status.beat_age_s:.1f}"]
    # Environment overrides, for tests and for impatient users (documented in docs/runner.md).
    if idle_exit_s is None and os.environ.get("FTUI_WORKER_IDLE_EXIT"):
        idle_exit_s = float(os.environ["FTUI_WORKER_IDLE_EXIT"])
    if poll_s is None and os.environ.get("FTUI_WORKER_POLL"):
        poll_s = float(os.environ["FTUI_WORKER_POLL"])
    cmd = [sys.executable, "-m", "ftui.queue.worker", str(runs_dir), *replaced]
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
    note = ""
    if replaced:
        note = (
            f"worker {status.pid} was not responding for {status.beat_age_s:.0f} s: killed it; "
            "the new worker adopts its running jobs"
        )
    return WorkerStart(popen.pid, note)


def kill_stuck(runs_dir: Path, status: heartbeat.WorkerStatus, wait_s: float = 10.0) -> bool:
    """SIGKILL the stuck worker (only the process with its pid AND start time) and wait for its lock to be
    free. False when the lock stays held (the process cannot die: uninterruptible sleep, e.g. a hung NFS)."""
    assert status.pid is not None
    procs.kill_exact(status.pid, status.pid_start, signal.SIGKILL)
    return _wait_lock_leaves(runs_dir, status.pid, wait_s)


def _wait_lock_leaves(runs_dir: Path, pid: int, wait_s: float) -> bool:
    """Wait until `pid` no longer holds the lock: free, or a racing launcher's new worker holds it."""
    deadline = time.monotonic() + wait_s
    while (holder := heartbeat.lock_holder(runs_dir)) is not None and holder.pid == pid:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def stop_worker(runs_dir: Path, timeout_s: float = 10.0) -> int | None:
    """Ask the worker to stop (SIGTERM; its running jobs keep running and the next worker adopts them). One
    still holding the lock after `timeout_s` (a stuck worker never handles the signal) gets SIGKILL, which
    loses nothing either. Its pid, or None if none ran."""
    holder = heartbeat.lock_holder(runs_dir)
    if holder is None or holder.pid <= 0:
        return None
    if not procs.kill_exact(holder.pid, holder.start, signal.SIGTERM):
        return holder.pid  # gone meanwhile, or the lock file names a process that is not the worker
    if not _wait_lock_leaves(runs_dir, holder.pid, timeout_s):
        procs.kill_exact(holder.pid, holder.start, signal.SIGKILL)
        _wait_lock_leaves(runs_dir, holder.pid, 5.0)
    return holder.pid


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
        replacing: tuple[int, float] | None = None,
    ) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        # follow_replacement=False: the jobs it runs live in this database; never write their ids elsewhere
        self.store = Store(self.runs_dir, busy_timeout_s=busy_timeout_s, follow_replacement=False)
        self.idle_exit_s = idle_exit_s
        self.poll_s = poll_s
        self._gpus: list[int | Gpu] | None = list(gpus) if gpus is not None else None  # None: detect once
        self._log_stream = log or sys.stderr
        self.lock = WorkerLock(self.runs_dir)
        self.local = LocalExecutor(self.store, self.log)
        self.slurm = SlurmExecutor(self.store, self.log)
        self.replacing = replacing  # (pid, seconds silent) of the stuck worker killed to start this one
        self._wakeup: Wakeup | None = None  # made in run(): signals are the main thread's
        self._stop = False
        self._started = time.time()
        self._beat_state = ""
        self._beat_at = 0.0
        self._beat_failed = False

    # ---- main loop --------------------------------------------------------------------------------------
    def run(self) -> int:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        if not self.lock.acquire():
            self.log(f"another worker serves {self.runs_dir} (pid {worker_pid(self.runs_dir)}); exiting")
            return 0
        self._wakeup = Wakeup()
        self.beat("starting")
        self.log(f"worker {os.getpid()} started for {self.runs_dir}")
        if self.replacing is not None:
            pid, silent = self.replacing
            self.log(
                f"replaced stuck worker {pid} (held the lock without a heartbeat for {silent:.0f} s; "
                "killed with SIGKILL); adopting its running jobs"
            )
        try:
            while not self._guard(self.reconcile, default=False):  # e.g. the database is locked: retry
                if self.stopping:
                    return 0
                self.beat("waiting for the database")
                self._wakeup.wait(self.poll_s)
            idle_since: float | None = None
            while not self.stopping:
                self.beat()
                self._guard(self.step)
                busy = self.active() > 0 or self._guard(self.store.has_pending, default=True)
                now = time.monotonic()
                if busy:
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                elif now - idle_since >= self.idle_exit_s and self._release_if_still_idle():
                    self.log("queue empty; exiting")
                    return 0
                self.beat()
                self._wakeup.wait(self.poll_s)
            why = f" ({signal_name(self._wakeup.stop_signal)})" if self._wakeup.stop_signal else ""
            self.beat("stopping")
            self.log(f"stopping{why}; {self.active()} running job(s) keep running and will be adopted")
            return 0
        finally:
            self._wakeup.close()
            if self.lock.held:
                self._forget_beat()
            self.lock.release()
            self.store.close()

    @property
    def stopping(self) -> bool:
        """SIGTERM or SIGINT arrived (the handler set the flag), or `request_stop` was called."""
        return self._stop or (self._wakeup is not None and self._wakeup.stop_signal != 0)

    # ---- heartbeat ----------------------------------------------------------------------------------------
    def beat(self, state: str | None = None) -> None:
        """Record that the loop is alive: at most every BEAT_EVERY_S, at once when the state changes. Only the
        lock holder beats (after an idle release another worker may own the file)."""
        if state is None:
            n = self.active()
            state = (f"{n} job running" if n == 1 else f"{n} jobs running") if n else "idle"
        now = time.monotonic()
        if not self.lock.held or (state == self._beat_state and now - self._beat_at < heartbeat.BEAT_EVERY_S):
            return
        try:
            heartbeat.write_beat(self.runs_dir, heartbeat.new_beat(self._started, state))
        except OSError as e:  # a full disk or a read-only folder: say so once, keep working
            if not self._beat_failed:
                self.log(f"cannot write the heartbeat ({e}); `ftui list` will show this worker as silent")
            self._beat_failed = True
            return
        self._beat_state, self._beat_at = state, now

    def _forget_beat(self) -> None:
        try:
            os.unlink(self.runs_dir / heartbeat.HEARTBEAT_NAME)
        except OSError:
            pass
        self._beat_state = ""

    @property
    def tracked(self) -> dict[int, Tracked]:
        """The local engine processes being watched (by job id)."""
        return self.local.tracked

    def active(self) -> int:
        return self.local.active() + self.slurm.active()

    def _release_if_still_idle(self) -> bool:
        """Drop the lock, then look once more: a launch that saw the lock taken committed its jobs before we
        released it, so either we see them now, or the launch saw the lock free and started a new worker."""
        self._forget_beat()
        self.lock.release()
        if not self._guard(self.store.has_pending, default=True):
            return True
        if self.lock.acquire():
            self.beat()
            return False
        return True  # another worker took over

    def step(self) -> None:
        """One pass: reap finished processes, pass on cancels, start what fits. Waiting jobs need no sweep:
        each transition queues or blocks what waited on the job it moved (transitions.set_state). It beats
        between the parts, so a slow part (a Slurm command near its timeout) never reads as a stuck worker."""
        self.reap()
        self.beat()
        self.handle_cancels()
        self.beat()
        self.start_jobs()

    def _guard(self, fn: Any, default: Any = None) -> Any:
        """Run one part of the loop; a locked database or a broken run folder is logged, never fatal."""
        try:
            return fn()
        except StoreReplaced as e:  # its runs folder was removed or replaced: a new worker serves the new one
            self.log(f"store: {e}; exiting")
            self._stop = True
        except StoreError as e:
            self.log(f"store: {e}")
        except OSError as e:
            self.log(f"os error: {e}")
        return default

    def log(self, msg: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} [worker {os.getpid()}] {msg}", file=self._log_stream, flush=True)

    # ---- settings and slots -----------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        stored = self.store.settings("runner") or {}
        return DEFAULT_SETTINGS | {k: v for k, v in stored.items() if k in DEFAULT_SETTINGS}

    def slots(self, settings: dict[str, Any]) -> list[Slot]:
        gpus = settings["gpus"]
        if gpus == "auto" and self._gpus is None:
            self._gpus, chosen = choose_gpus()  # honours the CUDA_VISIBLE_DEVICES the worker started with
            self.log(f"GPUs: {chosen}")
        gpus = tuple(gpus) if isinstance(gpus, list) else gpus
        return build_slots(gpus, int(settings["jobs_per_gpu"]), int(settings["cpu_jobs"]), self._gpus)

    # ---- reconciling after a restart ----------------------------------------------------------------------
    def reconcile(self) -> bool:
        """Make the jobs marked running match reality: adopt live ones, settle vanished ones. Then settle
        every waiting job once (a queue written by an older ftui may hold some that could move on)."""
        settings = self.settings()
        for job in self.store.jobs(states=[RUNNING]):
            executor = self.executor_of(job)
            if executor.adopt(job, settings):
                continue
            if finished_on_disk(self.store, job):
                self.store.finish(job.id, DONE, "finished while no worker watched it")
            elif job.cancel_requested:
                self.store.finish(job.id, CANCELLED, "cancelled (process gone)")
            elif executor is self.slurm:  # claimed but never submitted: it never ran, so queue it again
                self.store.requeue_interrupted(job.id, "not submitted before a worker crash; queued again")
                self.log(f"re-queued unsubmitted {job.run_key} {job.action}")
            elif settings["on_worker_crash"] == "resume":
                self.store.requeue_interrupted(
                    job.id, "interrupted (worker crash); resuming from its checkpoint"
                )
                self.log(f"re-queued interrupted {job.run_key} {job.action}")
            else:
                self.store.finish(
                    job.id, FAILED, "lost: its process ended while no worker watched it", outcome=LOST
                )
                self.log(f"lost {job.run_key} {job.action}")
        self.store.schedule()
        return True

    # ---- executors ----------------------------------------------------------------------------------------
    def executor_of(self, job: Job) -> Executor:
        return self.slurm if job.executor == "slurm" else self.local

    def reap(self) -> None:
        settings = self.settings()
        for executor in (self.local, self.slurm):
            executor.reap(settings)

    def handle_cancels(self) -> None:
        settings = self.settings()
        for executor in (self.local, self.slurm):
            executor.handle_cancels(settings)

    def start_jobs(self) -> None:
        """Submit every ready Slurm job (Slurm schedules them; they use no slot here), and start local jobs
        while a local slot is free (spread over the GPUs). Only as many queued local jobs are read as there
        are free slots: with every slot busy, 5,000 queued jobs cost one indexed query (the Slurm ones)."""
        if self.store.paused():  # `ftui pause`: start nothing new; running jobs go on
            return
        settings = self.settings()
        for job in self.store.jobs(states=[QUEUED], executors=["slurm"]):
            self.start(job, None, settings)
        self.slurm.submit_claimed(settings)  # those claimed above: alike ones as one job array, one sbatch
        self.beat()  # sbatch may take up to its timeout
        slots = self.slots(settings)
        capacity: dict[str, int] = {}
        for s in slots:
            capacity[s.label] = capacity.get(s.label, 0) + 1
        for label, n in self.local.slots_in_use().items():
            capacity[label] = capacity.get(label, 0) - n
        free = sum(n for n in capacity.values() if n > 0)
        if free <= 0:
            return
        local = self.store.jobs(states=[QUEUED], executors=LOCAL_EXECUTORS, limit=free)
        slots_by_label = {s.label: s for s in slots}
        if "cpu" in slots_by_label:  # CPU jobs share the cores among those that will run after this round
            running = self.local.slots_in_use().get("cpu", 0) + min(capacity["cpu"], len(local))
            threads = max(1, (os.cpu_count() or 1) // max(1, running))
            slots_by_label["cpu"] = dataclasses.replace(slots_by_label["cpu"], threads=threads)
        tried: set[int] = set()
        while local:
            for job in local:
                tried.add(job.id)
                free_labels = [label for label, n in capacity.items() if n > 0]
                if not free_labels:
                    return
                label = max(free_labels, key=lambda lb: capacity[lb])  # spread jobs over GPUs
                if self.start(job, slots_by_label[label], settings):
                    capacity[label] -= 1
                self.beat()
            # a job that could not start (no config.toml) left the queue: read the next ones for its slot
            free = sum(n for n in capacity.values() if n > 0)
            if free <= 0:
                return
            more = self.store.jobs(states=[QUEUED], executors=LOCAL_EXECUTORS, limit=free + len(tried))
            local = [job for job in more if job.id not in tried]

    def start(self, job: Job, slot: Slot | None, settings: dict[str, Any] | None = None) -> bool:
        """Claim a queued job and hand it to its executor (`slot`: the local slot; None for Slurm)."""
        settings = settings or self.settings()
        run_dir = self.store.run_dir(job.rel_dir)
        claimed = self.store.claim(job.id, slot.label if slot is not None else job.executor)
        if claimed is None:
            return False
        if not has_config(run_dir):
            why = "run directory missing" if not run_dir.is_dir() else "config.toml missing"
            self.store.finish(job.id, FAILED, f"{why}: {run_dir} (run `ftui launch` to write it)")
            return False
        return self.executor_of(claimed).start(claimed, slot, settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftui.queue.worker", description="the ftui worker daemon")
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--idle-exit", type=float, default=10.0, help="exit after this many idle seconds")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between passes over the queue")
    # Set by start_worker when it killed a stuck worker first, so this one's log says so.
    parser.add_argument("--replacing", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--silent-for", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    replacing = (args.replacing, args.silent_for) if args.replacing is not None else None
    return Worker(args.runs_dir, idle_exit_s=args.idle_exit, poll_s=args.poll, replacing=replacing).run()


if __name__ == "__main__":
    sys.exit(main())
