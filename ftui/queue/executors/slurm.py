"""The Slurm executor: each job is a batch job (`job.sbatch` in its run folder), submitted with sbatch.

Dependencies stay in the worker: a job is submitted only when its dependencies are done (the queue's own
scheduler, `blocked` logic and retries apply unchanged; see docs/slurm.md for why not `--dependency`).
The worker polls `squeue --me` at `poll_s` (all jobs in one call), asks `scontrol show job` (then `sacct`,
then `sacct -c`) for the exit code of a job that ended, maps Slurm's state to ours, and cancels with
`scancel`. Every call has a timeout: an unreachable controller never hangs the worker.

A busy controller answers badly: an error on stderr with exit 0 and no rows, a job missing from one answer.
So a reading call with an error on stderr has failed, whatever its exit code; a job absent from an answer
is unknown, not ended: it is settled on a confirmed end state (squeue, scontrol or sacct), or as vanished
only after MISSES_TO_VANISH answers in a row over VANISH_AFTER_S seconds. And a run folder gets no second
Slurm job while its previous one may be alive: before submitting again into a folder, the worker asks
squeue; an earlier attempt of the same job that still runs is watched again, another job there makes the
submission fail with the reason, and no answer means: not yet.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftui.atomic import atomic_write_bytes
from ftui.queue.executors import sbatch
from ftui.queue.executors.base import Ended, Executor, finished_on_disk, job_tag, last_words
from ftui.queue.executors.slurm_states import (  # re-exported: the executor's vocabulary
    ACTIVE,
    ENDED,
    FAILURES,
    MAX_REQUEUES,
    REQUEUE_STATES,
    FolderJob,
    SlurmInfo,
    describe_active,
    parse_exit,
    parse_folder_jobs,
    parse_sacct,
    parse_scontrol,
    parse_squeue,
    verdict,
)
from ftui.queue.gpus import Slot
from ftui.queue.model import LOST
from ftui.queue.store import CANCELLED, DONE, FAILED, RUNNING, Job
from ftui.rundir import has_config

CALL_TIMEOUT_S = 30.0  # sbatch, squeue, scontrol, sacct, scancel
# A job nobody in Slurm knows (not in squeue, no scontrol or sacct record) is settled as vanished only after
# this many successful squeue answers in a row without it, spread over at least this many seconds: a busy
# controller may drop a job from one answer, and Slurm keeps an ended job for MinJobAge (300 s by default).
MISSES_TO_VANISH = 3
VANISH_AFTER_S = 60.0


class SlurmError(Exception):
    """A Slurm command that failed: the message is Slurm's own (stderr), or why it could not run."""


class SlurmMissing(SlurmError):
    """The Slurm client is not installed here (so no job of ours can be running through it)."""


def call(
    args: Sequence[str], timeout_s: float = CALL_TIMEOUT_S, cwd: str | None = None, strict: bool = True
) -> str:
    """Run a Slurm command; its stdout, or SlurmError with Slurm's message. Never hangs past `timeout_s`.
    `strict` (for the commands that read): an error on stderr is a failure even with exit code 0 (squeue
    prints `slurm_load_jobs error: Socket timed out ...`, exits 0 and prints no rows)."""
    try:
        out = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )
    except FileNotFoundError as e:
        raise SlurmMissing(
            f'{args[0]} not found: install the Slurm client here, or use executor = "local"'
        ) from e
    except subprocess.TimeoutExpired as e:
        raise SlurmError(f"{args[0]} did not answer within {timeout_s:g} s (is slurmctld reachable?)") from e
    except OSError as e:
        raise SlurmError(f"{args[0]}: {e}") from e
    errors = [line for line in (out.stderr or "").splitlines() if _ERROR_WORD.search(line)]
    if out.returncode != 0 or (strict and errors):
        text = "\n".join(errors) if out.returncode == 0 else (out.stderr or out.stdout)
        message = " ".join(text.split()) or f"exit {out.returncode}"
        raise SlurmError(message if message.startswith(f"{args[0]}:") else f"{args[0]}: {message}")
    return out.stdout


__all__ = [
    "ACTIVE",
    "ENDED",
    "FAILURES",
    "MAX_REQUEUES",
    "REQUEUE_STATES",
    "FolderJob",
    "SlurmError",
    "SlurmExecutor",
    "SlurmInfo",
    "SlurmMissing",
    "call",
    "describe_active",
    "parse_exit",
    "parse_folder_jobs",
    "parse_sacct",
    "parse_scontrol",
    "parse_squeue",
    "verdict",
]

_ERROR_WORD = re.compile(r"\berror\b", re.IGNORECASE)


class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracked: dict[int, str] = {}  # our job id -> Slurm job id
        self._shown: dict[int, str] = {}  # the reason last written for each job (write only changes)
        self._last_poll = 0.0
        self._kill_sent: set[int] = set()
        self._misses: dict[int, tuple[int, float]] = {}  # job id -> (answers in a row without it, first)
        self._unsubmitted: set[int] = set()  # claimed, but squeue could not say whether its folder is free

    def active(self) -> int:
        return len(self.tracked) + len(self._unsubmitted)

    def poll_interval(self, settings: dict[str, Any]) -> float:
        if os.environ.get("FTUI_SLURM_POLL"):  # tests
            return float(os.environ["FTUI_SLURM_POLL"])
        return float((settings.get("slurm") or {}).get("poll_s", 10.0))

    @staticmethod
    def vanish_after_s() -> float:
        if os.environ.get("FTUI_SLURM_VANISH_S"):  # tests
            return float(os.environ["FTUI_SLURM_VANISH_S"])
        return VANISH_AFTER_S

    # ---- submitting ---------------------------------------------------------------------------------------
    def start(self, job: Job, slot: Slot | None, settings: dict[str, Any]) -> bool:
        """Submit the claimed job, unless a Slurm job may still be alive in its run folder."""
        run_dir = self.store.run_dir(job.rel_dir)
        # A folder that has had a batch job (job.sbatch is there) may still have one running: say, one the
        # worker wrongly settled while the controller did not answer, then `ftui retry`.
        if job.attempts > 1 or (run_dir / sbatch.SCRIPT_NAME).exists():
            try:
                alive = self._alive_in(run_dir)
            except SlurmMissing:
                alive = []  # no Slurm client: nothing runs through it, and sbatch will say it is missing
            except SlurmError as e:
                self._unsubmitted.add(job.id)
                self._show(
                    job.id,
                    f"not submitted yet: squeue cannot say whether an earlier job still runs in this run "
                    f"folder ({e}); asking again",
                    None,
                    None,
                )
                return True
            self._unsubmitted.discard(job.id)
            if alive:
                return self._previous_still_alive(job, alive[0])
        self._unsubmitted.discard(job.id)
        return self._submit(job, run_dir, settings)

    def _alive_in(self, run_dir: Path) -> list[FolderJob]:
        """The Slurm jobs not yet ended whose working folder is `run_dir`."""
        text = call(["squeue", "--me", "-h", "-t", "all", "-o", "%i|%T|%j|%Z"])
        here = run_dir.resolve()
        alive = []
        for found in parse_folder_jobs(text):
            if found.state in ACTIVE and found.workdir and Path(found.workdir).resolve() == here:
                alive.append(found)
        return alive

    def _previous_still_alive(self, job: Job, found: FolderJob) -> bool:
        """An earlier Slurm job still runs in the folder: watch it again if it is this job's (and no fresh
        start was asked for); otherwise fail the submission with the reason."""
        if found.name == sbatch.job_name(job.run_key, job.action) and not job.restart:
            reason = f"slurm job {found.slurm_id} still {found.state}: watching it again (no second job)"
            self.store.record_slurm(job.id, found.slurm_id, reason, None)
            self.tracked[job.id] = found.slurm_id
            self._shown[job.id] = reason
            self._last_poll = 0.0
            self.log(f"{job.run_key} {job.action}: {reason}")
            return True
        mine = found.name == sbatch.job_name(job.run_key, job.action)
        what = "an earlier attempt of this job" if mine else f"job {found.name!r}"
        reason = (
            f"not submitted: slurm job {found.slurm_id} ({what}, {found.state}) still runs in this run "
            f"folder; stop it (scancel {found.slurm_id}) or let it end, then retry"
        )
        self.store.finish(job.id, FAILED, reason)
        self.log(f"{job.run_key} {job.action}: {reason}")
        return False

    def _submit(self, job: Job, run_dir: Path, settings: dict[str, Any]) -> bool:
        slurm = settings.get("slurm") or {}
        try:
            if not has_config(run_dir):
                raise SlurmError(f"config.toml missing: {run_dir} (run `ftui launch` to write it)")
            text = sbatch.render(
                run_key=job.run_key,
                action=job.action,
                attempt=job.attempts,
                run_dir=run_dir,
                runs_dir=self.store.runs_dir,
                python=sys.executable,
                slurm=slurm,
                restart=bool(job.restart),
                comment=job_tag(self.store, job),
            )
            script = run_dir / sbatch.SCRIPT_NAME
            atomic_write_bytes(script, text.encode())
            # not strict: a job id on stdout means it was submitted, whatever sbatch warns about
            out = call(["sbatch", "--parsable", str(script)], cwd=str(run_dir), strict=False).strip()
        except (SlurmError, sbatch.SbatchError, OSError) as e:
            self.store.finish(job.id, FAILED, f"not submitted: {e}")
            self.log(f"{job.run_key} {job.action}: not submitted: {e}")
            return False
        slurm_id = out.splitlines()[-1].split(";")[0].strip() if out else ""
        if not slurm_id.replace("_", "").isdigit():
            self.store.finish(job.id, FAILED, f"not submitted: sbatch printed {out!r}, not a job id")
            return False
        reason = f"slurm job {slurm_id} submitted"
        self.store.record_slurm(job.id, slurm_id, reason, slurm.get("partition"))
        self.tracked[job.id] = slurm_id
        self._shown[job.id] = reason
        self._last_poll = 0.0  # look at it soon (a failure at start shows at once)
        self.log(f"submitted {job.run_key} {job.action} as slurm job {slurm_id}")
        return True

    # ---- adopting -----------------------------------------------------------------------------------------
    def adopt(self, job: Job, settings: dict[str, Any]) -> bool:
        slurm_id = job.slurm_id or self._find_submitted(job)
        if slurm_id is None:
            return False  # never submitted (the worker died before sbatch): the worker re-queues it
        if job.slurm_id is None:
            self.store.record_slurm(job.id, slurm_id, f"slurm job {slurm_id} (found again)", job.partition)
        self.tracked[job.id] = slurm_id
        self.log(f"watching {job.run_key} {job.action} (slurm job {slurm_id}) again")
        return True

    def _find_submitted(self, job: Job) -> str | None:
        """A job submitted just before a worker crash, found by the tag in its --comment."""
        try:
            text = call(["squeue", "--me", "-h", "-t", "all", "-o", "%i|%k"])
        except SlurmError:
            return None
        tag = job_tag(self.store, job)
        for line in text.splitlines():
            jid, _, comment = line.strip().partition("|")
            if comment == tag:
                return jid
        return None

    # ---- watching -----------------------------------------------------------------------------------------
    def reap(self, settings: dict[str, Any]) -> None:
        if not self.tracked and not self._unsubmitted:
            return
        now = time.monotonic()
        if now - self._last_poll < self.poll_interval(settings):
            return
        self._last_poll = now
        self._submit_waiting(settings)
        if not self.tracked:
            return
        try:
            seen = parse_squeue(call(["squeue", "--me", "-h", "-t", "all", "-o", "%i|%T|%r|%P|%N"]))
        except SlurmError as e:  # no answer is no news: every job stays as it was
            self._show_all(f"slurm: cannot ask squeue: {e}")
            return
        for job_id, slurm_id in list(self.tracked.items()):
            info = seen.get(slurm_id)
            if info is not None and info.state in ACTIVE:
                self._misses.pop(job_id, None)
                self._show(job_id, describe_active(info), info.partition, info.node)
                continue
            final = self._final_info(slurm_id) or info
            if final is not None and final.state in ACTIVE:  # squeue missed it between states
                self._misses.pop(job_id, None)
                continue
            if final is not None and final.state in ENDED:
                self._settle(job_id, final)
                continue
            self._missed(job_id, slurm_id, now)

    def _missed(self, job_id: int, slurm_id: str, now: float) -> None:
        """Slurm answered but knows nothing of the job: unknown, until it stays so long enough to count."""
        count, first = self._misses.get(job_id, (0, now))
        count += 1
        self._misses[job_id] = (count, first)
        waited = now - first
        if count >= MISSES_TO_VANISH and waited >= self.vanish_after_s():
            why = f"not in squeue, scontrol or sacct for {count} answers over {waited:.0f} s"
            self._settle(job_id, SlurmInfo(slurm_id, "UNKNOWN", why))
            return
        self._show(
            job_id,
            f"slurm job {slurm_id}: not in squeue's answer ({count} in a row); waiting for Slurm to confirm "
            "its end",
            None,
            None,
        )

    def _submit_waiting(self, settings: dict[str, Any]) -> None:
        """Try again to submit the jobs held back because squeue could not answer."""
        for job_id in sorted(self._unsubmitted):
            job = self.store.job(job_id)
            if job is None or job.state != RUNNING:
                self._forget(job_id)
            elif not job.cancel_requested:
                self.start(job, None, settings)

    def _final_info(self, slurm_id: str) -> SlurmInfo | None:
        """The ended job's record with its exit code: scontrol (for MinJobAge), then sacct, then sacct -c."""
        try:
            found = parse_scontrol(call(["scontrol", "show", "job", "-o", slurm_id]))
            if found is not None:
                return found
        except SlurmError:
            pass
        fmt = ["-n", "-P", "-X", "-o", "JobID,State,ExitCode,NodeList,Partition", "-j", slurm_id]
        for cmd in (["sacct", *fmt], ["sacct", "-c", *fmt]):
            try:
                found = parse_sacct(call(cmd), slurm_id)
            except SlurmError:
                continue
            if found is not None:
                return found
        return None

    def _settle(self, job_id: int, info: SlurmInfo) -> None:
        job = self.store.job(job_id)
        if job is None or job.state != RUNNING:
            self._forget(job_id)
            return
        done = finished_on_disk(self.store, job)
        if info.state == "UNKNOWN":
            ended: Ended | None = (
                Ended(DONE, f"slurm job {info.slurm_id} ended (Slurm forgot it; the result is on disk)")
                if done
                else Ended(
                    FAILED,
                    f"slurm job {info.slurm_id} vanished ({info.reason}) without a result",
                    outcome=LOST,
                )
            )
        else:
            words = "" if info.state == "COMPLETED" and done else last_words(self.store, job)
            ended = verdict(
                info,
                cancel_requested=bool(job.cancel_requested),
                requeues=job.requeues,
                done_on_disk=done,
                words=words,
            )
        if info.node or info.partition:
            self.store.update_slurm(job_id, job.reason, info.partition, info.node)
        if ended is None:
            self.store.requeue_after_limit(
                job_id, f"slurm job {info.slurm_id} {info.state}: re-queued once, resumes from its checkpoint"
            )
            self.log(f"{job.run_key} {job.action}: slurm {info.state}; re-queued")
        else:
            ended.record(self.store, job_id)
            self.log(f"{job.run_key} {job.action}: {ended.state} ({ended.reason})")
        self._forget(job_id)

    def _forget(self, job_id: int) -> None:
        self.tracked.pop(job_id, None)
        self._shown.pop(job_id, None)
        self._kill_sent.discard(job_id)
        self._misses.pop(job_id, None)
        self._unsubmitted.discard(job_id)

    def _show(self, job_id: int, reason: str, partition: str | None, node: str | None) -> None:
        key = f"{reason}|{partition}|{node}"
        if self._shown.get(job_id) != key:
            self.store.update_slurm(job_id, reason, partition, node)
            self._shown[job_id] = key

    def _show_all(self, reason: str) -> None:
        self.log(reason)
        for job_id in self.tracked:
            self._show(job_id, reason, None, None)

    # ---- cancelling ---------------------------------------------------------------------------------------
    def handle_cancels(self, settings: dict[str, Any]) -> None:
        """scancel sends SIGTERM (the engine saves a checkpoint), and Slurm kills what is left after its
        KillWait. After `grace_s` without an end, ftui sends SIGKILL through scancel once more."""
        if not self.tracked and not self._unsubmitted:
            return
        grace = float(settings.get("grace_s", 30.0))
        now = time.time()
        for job in self.store.jobs(states=[RUNNING]):
            if job.id in self._unsubmitted and job.cancel_requested:  # never reached Slurm: nothing to stop
                self.store.finish(job.id, CANCELLED, "cancelled by the user (before it was submitted)")
                self._forget(job.id)
                continue
            slurm_id = self.tracked.get(job.id)
            if slurm_id is None or not job.cancel_requested:
                continue
            try:
                if job.cancel_sent is None:
                    call(["scancel", slurm_id], strict=False)
                    self.store.mark_cancel_sent(job.id, now)
                    self._last_poll = 0.0
                    self.log(f"cancel {job.run_key} {job.action}: scancel {slurm_id}")
                elif job.id not in self._kill_sent and now - job.cancel_sent >= grace:
                    call(["scancel", "--signal=KILL", "--full", slurm_id], strict=False)
                    self._kill_sent.add(job.id)
                    self.log(f"cancel {job.run_key} {job.action}: scancel --signal=KILL {slurm_id}")
            except SlurmError as e:  # tried again on the next pass
                self._show(job.id, f"cancel requested; scancel failed: {e}", None, None)
