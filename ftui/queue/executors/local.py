"""The local executor: each job is an engine process on this machine (today's behaviour of the worker).

Each engine gets its own session and process group, stdin from /dev/null and stdout+stderr appended to
`RUN_DIR/train.log`; killing the worker (even with SIGKILL) leaves it running, and the next worker adopts it
(same pid AND same start time) instead of starting it twice. Cancelling sends SIGTERM to the group (the
engine saves a checkpoint), then SIGKILL after `grace_s`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from ftui.queue import procs
from ftui.queue.executors.base import JOB_TAG, Executor, exit_outcome, job_tag
from ftui.queue.gpus import Slot, job_env
from ftui.queue.store import FAILED, RUNNING, Job
from ftui.rundir import LOG


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


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracked: dict[int, Tracked] = {}

    def active(self) -> int:
        return len(self.tracked)

    def slots_in_use(self) -> dict[str, int]:
        used: dict[str, int] = {}
        for t in self.tracked.values():
            used[t.slot] = used.get(t.slot, 0) + 1
        return used

    # ---- adopting after a restart -------------------------------------------------------------------------
    def adopt(self, job: Job, settings: dict[str, Any]) -> bool:
        pid, start = job.pid, job.pid_start
        if pid is None:  # the last worker died between claiming the job and recording its process
            found = procs.find_tagged(JOB_TAG, job_tag(self.store, job))
            if found:
                pid, start = found[0], procs.start_ticks(found[0])
                self.store.record_process(job.id, pid, start, os.getpgid(pid))
        if pid is not None and procs.is_alive(pid, start):
            self.tracked[job.id] = Tracked(job.id, pid, start, job.pgid or pid, job.slot or "cpu", None)
            self.store.record_process(
                job.id, pid, start, job.pgid or pid, "running (adopted by a new worker)"
            )
            self.log(f"adopted {job.run_key} {job.action} (pid {pid})")
            return True
        return False

    # ---- processes ----------------------------------------------------------------------------------------
    def reap(self, settings: dict[str, Any]) -> None:
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
            ended = exit_outcome(self.store, job, rc)
            ended.record(self.store, job_id)
            del self.tracked[job_id]  # only after the outcome is committed (a locked db retries next pass)
            self.log(f"{job.run_key} {job.action}: {ended.state} ({ended.reason})")

    def handle_cancels(self, settings: dict[str, Any]) -> None:
        if not self.tracked:
            return
        grace = float(settings["grace_s"])
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

    def start(self, job: Job, slot: Slot | None, settings: dict[str, Any]) -> bool:
        assert slot is not None, "a local job needs a slot"
        run_dir = self.store.run_dir(job.rel_dir)
        cmd = [sys.executable, "-m", "engine", job.action, str(run_dir)]
        if job.action == "train" and job.restart:
            cmd.append("--restart")
        env = job_env(os.environ, slot) | {JOB_TAG: job_tag(self.store, job), "PYTHONUNBUFFERED": "1"}
        try:
            with open(run_dir / LOG, "ab") as log:
                header = f"\n==== ftui: {job.action} attempt {job.attempts} on {slot.label} at "
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
