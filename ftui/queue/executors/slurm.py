"""The Slurm executor: each job is a batch job (`job.sbatch` in its run folder), submitted with sbatch.

The jobs claimed in one worker pass are submitted together (`submit_claimed`): alike ones (the same
[runner.slurm] options) as one job array, one `sbatch` call for up to slurm_arrays.MAX_TASKS of them, each
task running its run folder's job.sbatch and known to the queue as `ARRAYID_TASK`; a job alone stays a
plain batch job. Dependencies stay in the worker: a job is submitted only when its dependencies are done
(the queue's own scheduler, `blocked` logic and retries apply unchanged; see docs/slurm.md for why not
`--dependency`). The worker polls `squeue --me -r` at `poll_s` (all jobs and array tasks in one call), asks
`scontrol show job` (one call per array or plain job that ended), then one `sacct`, then one `sacct -c`
for the exit codes of the jobs that ended, maps Slurm's state to ours, and cancels with `scancel`. Every
call has a timeout: an unreachable controller never hangs the worker.

A busy controller answers badly: an error on stderr with exit 0 and no rows, a job missing from one answer.
So a reading call with an error on stderr has failed, whatever its exit code; a job absent from an answer
is unknown, not ended: it is settled on a confirmed end state (squeue, scontrol or sacct), or as vanished
only after MISSES_TO_VANISH answers in a row over VANISH_AFTER_S seconds. And a run folder gets no second
Slurm job while its previous one may be alive: before submitting again into a folder, the worker asks
squeue; an earlier attempt of the same job that still runs is watched again, another job there makes the
submission fail with the reason, and no answer means: not yet.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftui.atomic import atomic_write_bytes, replace_unsynced, sync_file_system
from ftui.queue.executors import sbatch, slurm_arrays
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
    parse_sacct_all,
    parse_scontrol,
    parse_scontrol_all,
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
# -r: one line per array task (pending ones too), named ARRAYID_TASK; %A: a task's own job id
SQUEUE_STATES = ["squeue", "--me", "-r", "-h", "-t", "all", "-o", "%i|%T|%r|%P|%N|%A"]
SQUEUE_FOLDERS = ["squeue", "--me", "-r", "-h", "-t", "all", "-o", "%i|%T|%j|%Z"]
SACCT_FORMAT = ["-n", "-P", "-X", "-o", "JobID,State,ExitCode,NodeList,Partition"]


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
    "parse_sacct_all",
    "parse_scontrol",
    "parse_scontrol_all",
    "parse_squeue",
    "verdict",
]

_ERROR_WORD = re.compile(r"\berror\b", re.IGNORECASE)


class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracked: dict[int, str] = {}  # our job id -> Slurm job id (`1234`; `1234_5`: array task)
        self._shown: dict[int, str] = {}  # the reason last written for each job (write only changes)
        self._last_poll = 0.0
        self._kill_sent: set[int] = set()
        self._misses: dict[int, tuple[int, float]] = {}  # job id -> (answers in a row without it, first)
        self._claimed: list[Job] = []  # claimed in this pass: submitted together by submit_claimed
        self._unsubmitted: set[int] = set()  # claimed, but squeue could not say whether its folder is free
        self._raw: dict[int, str] = {}  # array task -> its own job id (squeue %A), for `sacct -c`
        self.arrays = slurm_arrays.ArrayIndex(self.store.runs_dir)

    def active(self) -> int:
        return len(self.tracked) + len(self._unsubmitted) + len(self._claimed)

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
        """Take a claimed job. It is submitted by `submit_claimed` (the worker calls it at the end of the
        pass; the next `reap` does if it did not), with the other jobs claimed in the same pass."""
        self._claimed.append(job)
        return True

    def submit_claimed(self, settings: dict[str, Any]) -> None:
        """Submit the jobs claimed since the last call: alike ones as job arrays (one sbatch per
        slurm_arrays.MAX_TASKS jobs), a job alone as a plain batch job. A job whose run folder may still
        have a live Slurm job is held back or refused (see `_folders_free`)."""
        jobs, self._claimed = self._claimed, []
        if jobs:
            self._submit_all(jobs, settings)

    def _submit_all(self, jobs: list[Job], settings: dict[str, Any]) -> None:
        slurm = settings.get("slurm") or {}
        scripts: list[tuple[Job, Path]] = []
        for job in self._folders_free(jobs):
            script = self._write_script(job, slurm)
            if script is not None:
                scripts.append((job, script))
        if scripts:
            try:  # one sync for every script written above, before Slurm may read one
                sync_file_system(self.store.runs_dir)
            except OSError as e:
                self._not_submitted([job for job, _ in scripts], str(e))
                return
        # Every job of one call has the same settings, so one option set: alike, chunked to Slurm's limit.
        for first in range(0, len(scripts), slurm_arrays.MAX_TASKS):
            chunk = scripts[first : first + slurm_arrays.MAX_TASKS]
            if len(chunk) == 1:
                self._submit_plain(*chunk[0], slurm)
            else:
                self._submit_array([job for job, _ in chunk], slurm)

    def _folders_free(self, jobs: list[Job]) -> list[Job]:
        """The jobs that may be submitted now. A run folder that has had a batch job (job.sbatch is there)
        may still have one running: say, one the worker wrongly settled while the controller did not answer,
        then `ftui retry`. For those, one squeue call for all: a live earlier attempt of the same job is
        watched again, another live job fails the submission, and no answer holds them back."""
        check = [
            j for j in jobs if j.attempts > 1 or (self.store.run_dir(j.rel_dir) / sbatch.SCRIPT_NAME).exists()
        ]
        if not check:
            return jobs
        try:
            alive = self._alive_by_folder()
        except SlurmMissing:
            alive = {}  # no Slurm client: nothing runs through it, and sbatch will say it is missing
        except SlurmError as e:
            held = {j.id for j in check}
            for job in check:
                self._unsubmitted.add(job.id)
                self._show(
                    job.id,
                    f"not submitted yet: squeue cannot say whether an earlier job still runs in this run "
                    f"folder ({e}); asking again",
                    None,
                    None,
                )
            return [j for j in jobs if j.id not in held]
        free = []
        for job in jobs:
            self._unsubmitted.discard(job.id)
            found = alive.get(self.store.run_dir(job.rel_dir).resolve())
            if found is not None:
                self._previous_still_alive(job, found)
            else:
                free.append(job)
        return free

    def _alive_by_folder(self) -> dict[Path, FolderJob]:
        """Run folder -> a Slurm job of ours not yet ended that works in it (an array task counts for the
        run folder it runs, not the array's folder)."""
        alive: dict[Path, FolderJob] = {}
        for found in parse_folder_jobs(call(SQUEUE_FOLDERS)):
            if found.state in ACTIVE and found.workdir:
                found = self.arrays.as_run_job(found, self.store.runs_dir)
                alive.setdefault(Path(found.workdir).resolve(), found)
        return alive

    def _previous_still_alive(self, job: Job, found: FolderJob) -> None:
        """An earlier Slurm job still runs in the folder: watch it again if it is this job's (and no fresh
        start was asked for); otherwise fail the submission with the reason."""
        if found.name == sbatch.job_name(job.run_key, job.action) and not job.restart:
            reason = f"slurm job {found.slurm_id} still {found.state}: watching it again (no second job)"
            self.store.record_slurm(job.id, found.slurm_id, reason, None)
            self.tracked[job.id] = found.slurm_id
            self._shown[job.id] = reason
            self._last_poll = 0.0
            self.log(f"{job.run_key} {job.action}: {reason}")
            return
        mine = found.name == sbatch.job_name(job.run_key, job.action)
        what = "an earlier attempt of this job" if mine else f"job {found.name!r}"
        reason = (
            f"not submitted: slurm job {found.slurm_id} ({what}, {found.state}) still runs in this run "
            f"folder; stop it (scancel {found.slurm_id}) or let it end, then retry"
        )
        self.store.finish(job.id, FAILED, reason)
        self.log(f"{job.run_key} {job.action}: {reason}")

    def _write_script(self, job: Job, slurm: dict[str, Any]) -> Path | None:
        """Write the job's job.sbatch in its run folder; on an error, fail the job with the reason."""
        run_dir = self.store.run_dir(job.rel_dir)
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
            replace_unsynced(script, text.encode())  # made durable by one sync before sbatch
        except (SlurmError, sbatch.SbatchError, OSError) as e:
            self._not_submitted([job], str(e))
            return None
        return script

    def _sbatch(self, script: Path) -> str:
        """Submit a script; the job id. Raises SlurmError (with Slurm's message) when it was not taken."""
        # not strict: a job id on stdout means it was submitted, whatever sbatch warns about
        out = call(["sbatch", "--parsable", str(script)], cwd=str(script.parent), strict=False).strip()
        slurm_id = out.splitlines()[-1].split(";")[0].strip() if out else ""
        if not slurm_id.replace("_", "").isdigit():
            raise SlurmError(f"sbatch printed {out!r}, not a job id")
        return slurm_id

    def _submit_plain(self, job: Job, script: Path, slurm: dict[str, Any]) -> None:
        try:
            slurm_id = self._sbatch(script)
        except SlurmError as e:
            self._not_submitted([job], str(e))
            return
        self._submitted(job, slurm_id, slurm)
        self.log(f"submitted {job.run_key} {job.action} as slurm job {slurm_id}")

    def _submit_array(self, jobs: list[Job], slurm: dict[str, Any]) -> None:
        """One sbatch for all `jobs` (their job.sbatch written): task i runs jobs[i], recorded as `ID_i`."""
        array_dir = slurm_arrays.new_array_dir(self.store.runs_dir)
        try:
            slurm_arrays.write_array(array_dir, jobs, [self.store.run_dir(j.rel_dir) for j in jobs])
            text = sbatch.render_array(
                name=f"ftui:array:{array_dir.name}",
                tasks=len(jobs),
                array_dir=array_dir,
                runs_dir=self.store.runs_dir,
                slurm=slurm,
                comment=slurm_arrays.array_comment(self.store.db_path, array_dir),
            )
            script = array_dir / sbatch.SCRIPT_NAME
            atomic_write_bytes(script, text.encode())
            base = self._sbatch(script)
        except (SlurmError, sbatch.SbatchError, OSError) as e:
            self._not_submitted(jobs, str(e))
            return
        for index, job in enumerate(jobs):
            self._submitted(job, f"{base}_{index}", slurm)
        self.log(f"submitted {len(jobs)} jobs as slurm job array {base} ({array_dir})")

    def _submitted(self, job: Job, slurm_id: str, slurm: dict[str, Any]) -> None:
        reason = f"slurm job {slurm_id} submitted"
        self.store.record_slurm(job.id, slurm_id, reason, slurm.get("partition"))
        self.tracked[job.id] = slurm_id
        self._shown[job.id] = reason
        self._last_poll = 0.0  # look at it soon (a failure at start shows at once)

    def _not_submitted(self, jobs: list[Job], why: str) -> None:
        """Fail jobs that Slurm did not take, each with the reason (never left running without a job)."""
        for job in jobs:
            self.store.finish(job.id, FAILED, f"not submitted: {why}")
        names = ", ".join(f"{j.run_key} {j.action}" for j in jobs[:3]) + (" …" if len(jobs) > 3 else "")
        self.log(f"{names}: not submitted: {why}")

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
        """A job submitted just before a worker crash, found by the tag in its --comment (an array task:
        by its array's comment and tasks.json)."""
        try:
            text = call(["squeue", "--me", "-r", "-h", "-t", "all", "-o", "%i|%k"])
        except SlurmError:
            return None
        tag = job_tag(self.store, job)
        for line in text.splitlines():
            jid, _, comment = line.strip().partition("|")
            if comment == tag or self.arrays.find(comment, self.store.db_path, jid, job):
                return jid
        return None

    # ---- watching -----------------------------------------------------------------------------------------
    def reap(self, settings: dict[str, Any]) -> None:
        self.submit_claimed(settings)  # claimed in the last pass by a caller that did not submit them
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
            seen = parse_squeue(call(SQUEUE_STATES))
        except SlurmError as e:  # no answer is no news: every job stays as it was
            self._show_all(f"slurm: cannot ask squeue: {e}")
            return
        ended: list[tuple[int, str, SlurmInfo | None]] = []  # not active in squeue: ask for the record
        for job_id, slurm_id in list(self.tracked.items()):
            info = seen.get(slurm_id)
            if info is not None and info.raw_id and info.raw_id != slurm_id:
                self._raw[job_id] = info.raw_id
            if info is not None and info.state in ACTIVE:
                self._misses.pop(job_id, None)
                self._show(job_id, describe_active(info), info.partition, info.node)
            else:
                ended.append((job_id, slurm_id, info))
        if not ended:
            return
        finals = self._final_infos([(slurm_id, self._raw.get(job_id)) for job_id, slurm_id, _ in ended])
        running = {job.id: job for job in self.store.jobs(states=[RUNNING])}  # one read, not one per job
        for job_id, slurm_id, info in ended:
            final = finals.get(slurm_id) or info
            if final is not None and final.state in ACTIVE:  # squeue missed it between states
                self._misses.pop(job_id, None)
                continue
            if final is not None and final.state in ENDED:
                self._settle(job_id, final, running.get(job_id))
                continue
            self._missed(job_id, slurm_id, now, running.get(job_id))

    def _missed(self, job_id: int, slurm_id: str, now: float, job: Job | None) -> None:
        """Slurm answered but knows nothing of the job: unknown, until it stays so long enough to count."""
        count, first = self._misses.get(job_id, (0, now))
        count += 1
        self._misses[job_id] = (count, first)
        waited = now - first
        if count >= MISSES_TO_VANISH and waited >= self.vanish_after_s():
            why = f"not in squeue, scontrol or sacct for {count} answers over {waited:.0f} s"
            self._settle(job_id, SlurmInfo(slurm_id, "UNKNOWN", why), job)
            return
        self._show(
            job_id,
            f"slurm job {slurm_id}: not in squeue's answer ({count} in a row); waiting for Slurm to confirm "
            "its end",
            None,
            None,
        )

    def _submit_waiting(self, settings: dict[str, Any]) -> None:
        """Try again to submit the jobs held back because squeue could not answer (together, as one pass)."""
        if not self._unsubmitted:
            return
        running = {job.id: job for job in self.store.jobs(states=[RUNNING])}
        for job_id in sorted(self._unsubmitted):
            job = running.get(job_id)
            if job is None:
                self._forget(job_id)
            elif not job.cancel_requested:
                self._claimed.append(job)
        self.submit_claimed(settings)

    def _final_infos(self, ids: list[tuple[str, str | None]]) -> dict[str, SlurmInfo]:
        """The records, with exit codes, of jobs that squeue no longer shows active: (id, the array task's
        own id or None) -> by id. scontrol while Slurm remembers them (MinJobAge; one call per array or
        plain job), then one `sacct` for the rest (with accounting), then one `sacct -c` (the completion
        log, which knows array tasks only by their own ids)."""
        wanted = {slurm_id for slurm_id, _ in ids}
        found: dict[str, SlurmInfo] = {}
        for base in dict.fromkeys(slurm_id.partition("_")[0] for slurm_id, _ in ids):
            try:
                answer = parse_scontrol_all(call(["scontrol", "show", "job", "-o", base]))
            except SlurmError:
                continue
            found.update((k, v) for k, v in answer.items() if k in wanted)
        rest = [(slurm_id, raw) for slurm_id, raw in ids if slurm_id not in found]
        if rest:
            try:
                answer = parse_sacct_all(call(["sacct", *SACCT_FORMAT, "-j", ",".join(s for s, _ in rest)]))
                found.update((k, v) for k, v in answer.items() if k in wanted)
            except SlurmError:
                pass
        by_raw = [(slurm_id, raw or slurm_id) for slurm_id, raw in rest if slurm_id not in found]
        if by_raw:
            try:
                raws = ",".join(raw for _, raw in by_raw)
                answer = parse_sacct_all(call(["sacct", "-c", *SACCT_FORMAT, "-j", raws]))
            except SlurmError:
                return found
            for slurm_id, raw in by_raw:
                if raw in answer:
                    found[slurm_id] = dataclasses.replace(answer[raw], slurm_id=slurm_id)
        return found

    def _settle(self, job_id: int, info: SlurmInfo, job: Job | None) -> None:
        """Record how the job ended (`job`: its row, read by the caller; None when no longer running)."""
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
        self._raw.pop(job_id, None)

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
        KillWait. After `grace_s` without an end, ftui sends SIGKILL through scancel once more. The first
        scancel of all the jobs cancelled since the last pass is one call."""
        if not self.tracked and not self._unsubmitted:
            return
        grace = float(settings.get("grace_s", 30.0))
        now = time.time()
        first: list[Job] = []
        for job in self.store.jobs(states=[RUNNING]):
            if job.id in self._unsubmitted and job.cancel_requested:  # never reached Slurm: nothing to stop
                self.store.finish(job.id, CANCELLED, "cancelled by the user (before it was submitted)")
                self._forget(job.id)
                continue
            slurm_id = self.tracked.get(job.id)
            if slurm_id is None or not job.cancel_requested:
                continue
            if job.cancel_sent is None:
                first.append(job)
            elif job.id not in self._kill_sent and now - job.cancel_sent >= grace:
                try:
                    call(["scancel", "--signal=KILL", "--full", slurm_id], strict=False)
                except SlurmError as e:  # tried again on the next pass
                    self._show(job.id, f"cancel requested; scancel failed: {e}", None, None)
                    continue
                self._kill_sent.add(job.id)
                self.log(f"cancel {job.run_key} {job.action}: scancel --signal=KILL {slurm_id}")
        if first:
            self._scancel(first, now)

    def _scancel(self, jobs: list[Job], now: float) -> None:
        """One `scancel ID ID ...` for all; when it fails (one id Slurm no longer knows fails the call),
        each job on its own, so one bad id never holds the others back."""
        ids = [self.tracked[job.id] for job in jobs]
        try:
            call(["scancel", *ids], strict=False)
            done = jobs
        except SlurmError:
            done = []
            for job, slurm_id in zip(jobs, ids, strict=True):
                try:
                    call(["scancel", slurm_id], strict=False)
                    done.append(job)
                except SlurmError as e:  # tried again on the next pass
                    self._show(job.id, f"cancel requested; scancel failed: {e}", None, None)
        for job in done:
            self.store.mark_cancel_sent(job.id, now)
            self.log(f"cancel {job.run_key} {job.action}: scancel {self.tracked[job.id]}")
        if done:
            self._last_poll = 0.0
