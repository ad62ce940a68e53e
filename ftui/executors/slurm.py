"""The Slurm executor: each job is a batch job (`job.sbatch` in its run folder), submitted with sbatch.

Dependencies stay in the worker: a job is submitted only when its dependencies are done (the queue's own
scheduler, `blocked` logic and retries apply unchanged; see docs/slurm.md for why not `--dependency`).
The worker polls `squeue --me` at `poll_s` (all jobs in one call), asks `scontrol show job` (then `sacct`,
then `sacct -c`) for the exit code of a job that ended, maps Slurm's state to ours, and cancels with
`scancel`. Every call has a timeout: an unreachable controller never hangs the worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftui.atomic import atomic_write_bytes
from ftui.executors import sbatch
from ftui.executors.base import Ended, Executor, finished_on_disk, job_tag, last_words, signal_name
from ftui.gpus import Slot
from ftui.store import CANCELLED, DONE, FAILED, RUNNING, Job

CALL_TIMEOUT_S = 30.0  # sbatch, squeue, scontrol, sacct, scancel
MAX_REQUEUES = 1  # automatic re-queues after TIMEOUT or PREEMPTED (the engine resumes from its checkpoint)

# Slurm job states (squeue %T / scontrol JobState / sacct State) that mean "not ended yet".
ACTIVE = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "STOPPED",
        "RESIZING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESV_DEL_HOLD",
        "SIGNALING",
        "STAGE_OUT",
        "SPECIAL_EXIT",
    }
)
REQUEUE_STATES = frozenset({"TIMEOUT", "PREEMPTED"})
# Ended states that are failures, with what they mean.
FAILURES: dict[str, str] = {
    "FAILED": "the job failed",
    "OUT_OF_MEMORY": "out of memory (raise [runner.slurm] mem)",
    "NODE_FAIL": "its node failed",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "it missed its deadline",
}


class SlurmError(Exception):
    """A Slurm command that failed: the message is Slurm's own (stderr), or why it could not run."""


@dataclass(frozen=True)
class SlurmInfo:
    """One job as Slurm reports it."""

    slurm_id: str
    state: str  # first word: "CANCELLED by 0" -> "CANCELLED"
    reason: str = ""
    partition: str | None = None
    node: str | None = None
    exit_code: str | None = None  # "3:0" (code:signal)


def call(args: Sequence[str], timeout_s: float = CALL_TIMEOUT_S, cwd: str | None = None) -> str:
    """Run a Slurm command; its stdout, or SlurmError with Slurm's message. Never hangs past `timeout_s`."""
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
        raise SlurmError(
            f'{args[0]} not found: install the Slurm client here, or use executor = "local"'
        ) from e
    except subprocess.TimeoutExpired as e:
        raise SlurmError(f"{args[0]} did not answer within {timeout_s:g} s (is slurmctld reachable?)") from e
    except OSError as e:
        raise SlurmError(f"{args[0]}: {e}") from e
    if out.returncode != 0:
        message = " ".join((out.stderr or out.stdout).split()) or f"exit {out.returncode}"
        raise SlurmError(message if message.startswith(f"{args[0]}:") else f"{args[0]}: {message}")
    return out.stdout


def parse_exit(exit_code: str | None) -> tuple[int | None, int | None]:
    """Slurm's "code:signal" -> (exit code, signal); (None, None) when unknown."""
    if not exit_code or ":" not in exit_code:
        return None, None
    code, _, sig = exit_code.partition(":")
    try:
        return int(code), int(sig)
    except ValueError:
        return None, None


def parse_squeue(text: str) -> dict[str, SlurmInfo]:
    """Lines of `squeue -o %i|%T|%r|%P|%N` -> job id -> info."""
    found = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5 or not parts[0]:
            continue
        jid, state, reason, partition, node = parts[:5]
        found[jid] = SlurmInfo(
            jid, state.split()[0] if state else "", reason, partition or None, node or None
        )
    return found


def parse_scontrol(text: str) -> SlurmInfo | None:
    """`scontrol show job -o ID` (one line of Key=Value words) -> info."""
    fields: dict[str, str] = {}
    for word in text.split():
        key, eq, value = word.partition("=")
        if eq and key not in fields:
            fields[key] = value
    if "JobId" not in fields or "JobState" not in fields:
        return None
    node = fields.get("NodeList")
    return SlurmInfo(
        fields["JobId"],
        fields["JobState"],
        fields.get("Reason", ""),
        fields.get("Partition") or None,
        None if node in (None, "", "(null)") else node,
        fields.get("ExitCode"),
    )


def parse_sacct(text: str, slurm_id: str) -> SlurmInfo | None:
    """`sacct -n -P -o JobID,State,ExitCode,NodeList,Partition` -> the line of the job itself (no steps)."""
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[0] == slurm_id and parts[1]:
            node = parts[3] if len(parts) > 3 and parts[3] not in ("", "None assigned") else None
            partition = parts[4] if len(parts) > 4 and parts[4] else None
            return SlurmInfo(slurm_id, parts[1].split()[0], "", partition, node, parts[2])
    return None


def describe_active(info: SlurmInfo) -> str:
    """The reason a running-or-pending job shows in `ftui list` and the app."""
    if info.state == "RUNNING":
        return f"slurm job {info.slurm_id} RUNNING" + (f" on {info.node}" if info.node else "")
    if info.reason and info.reason != "None":
        return f"slurm job {info.slurm_id} {info.state} ({info.reason})"
    return f"slurm job {info.slurm_id} {info.state}"


def verdict(
    info: SlurmInfo, *, cancel_requested: bool, requeues: int, done_on_disk: bool, words: str = ""
) -> Ended | None:
    """Map an ended Slurm job to our outcome. None means: re-queue it (TIMEOUT/PREEMPTED, first time)."""
    code, sig = parse_exit(info.exit_code)
    jid, state = info.slurm_id, info.state
    where = f" on {info.node}" if info.node else ""
    if cancel_requested:
        return Ended(CANCELLED, "cancelled by the user", code, sig or None)
    if state == "COMPLETED":
        if done_on_disk:
            return Ended(DONE, f"slurm job {jid} COMPLETED", code if code is not None else 0)
        return Ended(FAILED, f"slurm job {jid} COMPLETED but left no result{words}", code)
    if state == "CANCELLED":
        return Ended(CANCELLED, f"slurm job {jid} CANCELLED outside ftui (scancel or an administrator)", code)
    if state in REQUEUE_STATES:
        if done_on_disk:
            return Ended(DONE, f"slurm job {jid} {state} after it finished", code)
        if requeues < MAX_REQUEUES:
            return None
        return Ended(
            FAILED, f"slurm job {jid} {state} again after {requeues} re-queue(s){where}", code, sig or None
        )
    meaning = FAILURES.get(state, "ended")
    if state == "FAILED" and sig:
        detail = f"killed by {signal_name(sig)}"
    elif state == "FAILED" and code is not None:
        detail = f"{'bad config' if code == 2 else 'exit'} {code}"
    else:
        detail = meaning
    return Ended(FAILED, f"slurm job {jid} {state}{where}: {detail}{words}", code, sig or None)


class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracked: dict[int, str] = {}  # our job id -> Slurm job id
        self._shown: dict[int, str] = {}  # the reason last written for each job (write only changes)
        self._last_poll = 0.0
        self._kill_sent: set[int] = set()

    def active(self) -> int:
        return len(self.tracked)

    def poll_interval(self, settings: dict[str, Any]) -> float:
        if os.environ.get("FTUI_SLURM_POLL"):  # tests
            return float(os.environ["FTUI_SLURM_POLL"])
        return float((settings.get("slurm") or {}).get("poll_s", 10.0))

    # ---- submitting ---------------------------------------------------------------------------------------
    def start(self, job: Job, slot: Slot | None, settings: dict[str, Any]) -> bool:
        run_dir = self.store.run_dir(job.rel_dir)
        slurm = settings.get("slurm") or {}
        try:
            if not (run_dir / "config.toml").is_file():
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
            out = call(["sbatch", "--parsable", str(script)], cwd=str(run_dir)).strip()
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
        if not self.tracked:
            return
        now = time.monotonic()
        if now - self._last_poll < self.poll_interval(settings):
            return
        self._last_poll = now
        try:
            seen = parse_squeue(call(["squeue", "--me", "-h", "-t", "all", "-o", "%i|%T|%r|%P|%N"]))
        except SlurmError as e:
            self._show_all(f"slurm: cannot ask squeue: {e}")
            return
        for job_id, slurm_id in list(self.tracked.items()):
            info = seen.get(slurm_id)
            if info is not None and info.state in ACTIVE:
                self._show(job_id, describe_active(info), info.partition, info.node)
                continue
            final = self._final_info(slurm_id) or info
            if final is None:
                final = SlurmInfo(slurm_id, "UNKNOWN", "Slurm no longer knows the job")
            if final.state in ACTIVE:  # squeue missed it between states
                continue
            self._settle(job_id, final)

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
                else Ended(FAILED, f"slurm job {info.slurm_id} vanished from Slurm without a result")
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
            self.store.finish(
                job_id, ended.state, ended.reason, exit_code=ended.exit_code, signal=ended.signal
            )
            self.log(f"{job.run_key} {job.action}: {ended.state} ({ended.reason})")
        self._forget(job_id)

    def _forget(self, job_id: int) -> None:
        self.tracked.pop(job_id, None)
        self._shown.pop(job_id, None)
        self._kill_sent.discard(job_id)

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
        if not self.tracked:
            return
        grace = float(settings.get("grace_s", 30.0))
        now = time.time()
        for job in self.store.jobs(states=[RUNNING]):
            slurm_id = self.tracked.get(job.id)
            if slurm_id is None or not job.cancel_requested:
                continue
            try:
                if job.cancel_sent is None:
                    call(["scancel", slurm_id])
                    self.store.mark_cancel_sent(job.id, now)
                    self._last_poll = 0.0
                    self.log(f"cancel {job.run_key} {job.action}: scancel {slurm_id}")
                elif job.id not in self._kill_sent and now - job.cancel_sent >= grace:
                    call(["scancel", "--signal=KILL", "--full", slurm_id])
                    self._kill_sent.add(job.id)
                    self.log(f"cancel {job.run_key} {job.action}: scancel --signal=KILL {slurm_id}")
            except SlurmError as e:  # tried again on the next pass
                self._show(job.id, f"cancel requested; scancel failed: {e}", None, None)
