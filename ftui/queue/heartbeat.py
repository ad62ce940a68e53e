"""Who serves a runs folder, and whether it still works: the worker's lock and its heartbeat.

- `runs/.worker.lock`: an fcntl lock the one worker holds while it runs; the file holds its pid and process
  start time. The lock says whether a worker exists: the kernel drops it when the process dies, even by
  SIGKILL, so a free lock always means "no worker".
- `runs/.worker.heartbeat`: a small JSON record the worker rewrites on each pass of its loop (pid, process
  start time, host, last beat, what it is doing). It says whether that worker still works: a worker frozen
  by SIGSTOP, a deadlock or a hung system call keeps the lock but stops beating.

A worker silent for `NOT_RESPONDING_S` is shown as "not responding"; one silent for `stuck_after_s()` (and
verified by pid AND start time, on this host) is killed and replaced by the next `ftui launch`, `retry`,
`cancel` or app action (ftui.queue.worker.start_worker). Readers never need write access to the runs folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ftui.queue import procs

LOCK_NAME = ".worker.lock"
HEARTBEAT_NAME = ".worker.heartbeat"
BEAT_EVERY_S = 0.1  # at most this often on disk (a pass can be sub-millisecond); a state change is immediate
NOT_RESPONDING_S = 10.0  # longer than any pass of a healthy local worker (a locked database waits 10 s)
# Longer than the slowest healthy pass: a Slurm command may take its full 30 s timeout (executors/slurm.py),
# and the worker beats between the parts of a pass. Killing a healthy worker loses nothing (its engines run
# on and the new worker adopts them), but the threshold keeps it rare.
STUCK_S = 120.0


def _hostname() -> str:
    """This machine's name, as `socket.gethostname()` gives it (on Linux both read uname's nodename): the
    socket module costs `ftui list` some milliseconds of start-up."""
    return os.uname().nodename


def stuck_after_s() -> float:
    """Silence after which a worker is replaced: STUCK_S, or FTUI_WORKER_STUCK_S (tests, impatient users)."""
    value = os.environ.get("FTUI_WORKER_STUCK_S")
    return float(value) if value else STUCK_S


@dataclass(frozen=True)
class Holder:
    """The process holding the worker lock, as its lock file says (pid -1: unreadable)."""

    pid: int
    start: int | None


def lock_holder(runs_dir: Path) -> Holder | None:
    """The worker holding `runs_dir`'s lock, or None when the lock is free (no worker)."""
    try:
        fd = os.open(Path(runs_dir) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            parts = os.pread(fd, 64, 0).split()
            pid = int(parts[0]) if parts and parts[0].isdigit() else -1
            start = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            return Holder(pid, start)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Beat:
    """One heartbeat record. `mono` is CLOCK_MONOTONIC, shared by every process of the machine, so the age
    of a beat written on this host does not depend on the wall clock (which NTP may step)."""

    pid: int
    pid_start: int | None
    host: str
    started: float  # unix time the worker started
    t: float  # unix time of the beat
    mono: float
    state: str  # "starting", "idle", "2 jobs running", "waiting for the database", "stopping"

    def age_s(self) -> float:
        if self.host == _hostname():
            return max(0.0, time.monotonic() - self.mono)
        return max(0.0, time.time() - self.t)


def new_beat(started: float, state: str) -> Beat:
    pid = os.getpid()
    return Beat(pid, procs.start_ticks(pid), _hostname(), started, time.time(), time.monotonic(), state)


def write_beat(runs_dir: Path, beat: Beat) -> None:
    """Replace the heartbeat file (temp file + rename: a reader sees a whole record). No fsync: a beat is
    worthless after a power cut, and the lock tells a reader there is no worker then."""
    path = Path(runs_dir) / HEARTBEAT_NAME
    tmp = path.with_name(HEARTBEAT_NAME + ".tmp")  # one writer at a time: only the lock holder beats
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(fd, json.dumps(asdict(beat)).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_beat(runs_dir: Path) -> Beat | None:
    try:
        data = json.loads((Path(runs_dir) / HEARTBEAT_NAME).read_bytes())
        return Beat(**data)
    except (OSError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class WorkerStatus:
    """What `ftui list` and the app show about the worker of a runs folder."""

    pid: int | None  # the lock holder; None: no worker
    pid_start: int | None
    host: str | None  # where it runs (from its heartbeat)
    beat_age_s: float | None  # seconds since its last beat (None: never beat)
    activity: str  # its own last words: "idle", "2 jobs running", ...
    queued: int  # open jobs that are not running (queued + waiting)
    running: int
    stuck_after_s: float

    @property
    def state(self) -> str:
        """One of "none", "running", "not responding"."""
        if self.pid is None:
            return "none"
        silent_s = min(NOT_RESPONDING_S, self.stuck_after_s)  # past the replacement threshold: surely silent
        if self.beat_age_s is not None and self.beat_age_s > silent_s:
            return "not responding"
        return "running"

    @property
    def local(self) -> bool:
        return self.host is None or self.host == _hostname()

    @property
    def stuck(self) -> bool:
        """Silent past the threshold and verifiably this host's process: the next launch replaces it."""
        return (
            self.pid is not None
            and self.pid_start is not None
            and self.local
            and self.beat_age_s is not None
            and self.beat_age_s > self.stuck_after_s
            and procs.is_alive(self.pid, self.pid_start)
        )

    def line(self) -> str:
        """One line for people: "worker 1234, beat 0.4 s ago", "worker 1234 not responding for 45 s",
        "no worker, 12 jobs queued"."""
        if self.pid is None:
            parts = ["no worker"]
            if self.queued:
                parts.append(_count(self.queued, "job") + " queued")
            if self.running:
                parts.append(f"{self.running} running unwatched")
            return ", ".join(parts)
        where = f" on {self.host}" if not self.local else ""
        if self.state == "not responding":
            assert self.beat_age_s is not None
            line = f"worker {self.pid}{where} not responding for {self.beat_age_s:.0f} s"
            return line + (" (the next launch replaces it)" if self.stuck else "")
        if self.beat_age_s is None:
            return f"worker {self.pid}{where}, no beat yet"
        return f"worker {self.pid}{where}, beat {self.beat_age_s:.1f} s ago"

    @property
    def needs_attention(self) -> bool:
        """Work waits and nobody does it: no worker while jobs are open, or a silent one."""
        return self.state == "not responding" or (self.pid is None and bool(self.queued or self.running))

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "pid_start": self.pid_start,
            "host": self.host,
            "state": self.state,
            "beat_age_s": None if self.beat_age_s is None else round(self.beat_age_s, 3),
            "activity": self.activity,
            "queued": self.queued,
            "running": self.running,
            "stuck": self.stuck,
            "stuck_after_s": self.stuck_after_s,
            "line": self.line(),
        }


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def worker_status(
    runs_dir: Path, open_jobs: Sequence[Any] = (), stuck_after: float | None = None
) -> WorkerStatus:
    """The worker of `runs_dir` as its lock and heartbeat show it. `open_jobs`: the queue's open jobs (any
    objects with a `state`), counted for the "no worker, 12 jobs queued" line."""
    queued = sum(1 for j in open_jobs if j.state in ("queued", "waiting"))
    running = sum(1 for j in open_jobs if j.state == "running")
    threshold = stuck_after_s() if stuck_after is None else stuck_after
    holder = lock_holder(runs_dir)
    if holder is None:
        return WorkerStatus(None, None, None, None, "", queued, running, threshold)
    beat = read_beat(runs_dir)
    if beat is not None and beat.pid == holder.pid and beat.pid_start == holder.start:
        return WorkerStatus(
            holder.pid, holder.start, beat.host, beat.age_s(), beat.state, queued, running, threshold
        )
    # Holding the lock but no beat of its own yet (it beats right after taking the lock): silent since it
    # started. On another host its start time means nothing here, so no age.
    started = procs.ticks_to_unix(holder.start) if procs.is_alive(holder.pid, holder.start) else None
    age = None if started is None else max(0.0, time.time() - started)
    return WorkerStatus(holder.pid, holder.start, None, age, "starting", queued, running, threshold)
