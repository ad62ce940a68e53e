"""What Slurm says about a job and what it means for ours: the job states, parsers of `squeue`, `scontrol`
and `sacct` output, and the verdict on a job that ended."""

from __future__ import annotations

from dataclasses import dataclass

from ftui.queue.executors.base import Ended, signal_name
from ftui.queue.model import KILLED, LOST
from ftui.queue.store import CANCELLED, DONE, FAILED

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
# States that confirm a job has ended (anything else that is not ACTIVE is taken for unknown).
ENDED = frozenset(
    {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "PREEMPTED", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}
    | {"DEADLINE", "REVOKED"}
)
# Ended states that are failures, with what they mean.
FAILURES: dict[str, str] = {
    "FAILED": "the job failed",
    "OUT_OF_MEMORY": "out of memory (raise [runner.slurm] mem)",
    "NODE_FAIL": "its node failed",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "it missed its deadline",
}
# The outcome of those that are not the job's own failure: Slurm stopped it, or it went down with its node.
FAILURE_OUTCOMES: dict[str, str] = {
    "OUT_OF_MEMORY": KILLED,
    "DEADLINE": KILLED,
    "NODE_FAIL": LOST,
    "BOOT_FAIL": LOST,
}


@dataclass(frozen=True)
class SlurmInfo:
    """One job as Slurm reports it."""

    slurm_id: str
    state: str  # first word: "CANCELLED by 0" -> "CANCELLED"
    reason: str = ""
    partition: str | None = None
    node: str | None = None
    exit_code: str | None = None  # "3:0" (code:signal)
    raw_id: str | None = None  # an array task's own job id (squeue %A): what `sacct -c` knows it by


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
    """Lines of `squeue -r -o %i|%T|%r|%P|%N[|%A]` -> job id (`1234`; `1234_5`: an array task) -> info."""
    found = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5 or not parts[0]:
            continue
        jid, state, reason, partition, node = parts[:5]
        raw = parts[5] if len(parts) > 5 and parts[5].isdigit() else None
        found[jid] = SlurmInfo(
            jid, state.split()[0] if state else "", reason, partition or None, node or None, raw_id=raw
        )
    return found


@dataclass(frozen=True)
class FolderJob:
    """A job Slurm still runs (or will run) in some folder: from `squeue -o %i|%T|%j|%Z`."""

    slurm_id: str
    state: str
    name: str
    workdir: str


def parse_folder_jobs(text: str) -> list[FolderJob]:
    found = []
    for line in text.splitlines():
        parts = line.strip().split("|", 3)  # the folder comes last: it may contain "|"
        if len(parts) == 4 and parts[0]:
            found.append(FolderJob(parts[0], parts[1].split()[0] if parts[1] else "", parts[2], parts[3]))
    return found


def parse_scontrol(text: str) -> SlurmInfo | None:
    """`scontrol show job -o ID` (one line of Key=Value words) -> info."""
    found = parse_scontrol_all(text.split("\n", 1)[0])
    return next(iter(found.values()), None)


def parse_scontrol_all(text: str) -> dict[str, SlurmInfo]:
    """`scontrol show job -o ID` (one line per job; an array's id gives one line per task) -> id -> info.
    An array task is keyed `ARRAYID_TASK`, as squeue shows it; a line for still-unsplit pending tasks
    (`ArrayTaskId=4-9`) is left out."""
    found = {}
    for line in text.splitlines():
        fields: dict[str, str] = {}
        for word in line.split():
            key, eq, value = word.partition("=")
            if eq and key not in fields:
                fields[key] = value
        if "JobId" not in fields or "JobState" not in fields:
            continue
        jid = fields["JobId"]
        task = fields.get("ArrayTaskId")
        if task is not None:
            if not task.isdigit():
                continue
            jid = f"{fields.get('ArrayJobId', jid)}_{task}"
        node = fields.get("NodeList")
        found[jid] = SlurmInfo(
            jid,
            fields["JobState"],
            fields.get("Reason", ""),
            fields.get("Partition") or None,
            None if node in (None, "", "(null)") else node,
            fields.get("ExitCode"),
            raw_id=fields["JobId"] if task is not None else None,
        )
    return found


def parse_sacct(text: str, slurm_id: str) -> SlurmInfo | None:
    """`sacct -n -P -o JobID,State,ExitCode,NodeList,Partition` -> the line of the job itself (no steps)."""
    return parse_sacct_all(text).get(slurm_id)


def parse_sacct_all(text: str) -> dict[str, SlurmInfo]:
    """`sacct -n -P -o JobID,State,ExitCode,NodeList,Partition -j ID,ID,...` -> job id -> info, one per job
    (its steps, `1234.batch`, are left out; the first line of a job wins)."""
    found: dict[str, SlurmInfo] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0] or "." in parts[0] or not parts[1] or parts[0] in found:
            continue
        node = parts[3] if len(parts) > 3 and parts[3] not in ("", "None assigned") else None
        partition = parts[4] if len(parts) > 4 and parts[4] else None
        found[parts[0]] = SlurmInfo(parts[0], parts[1].split()[0], "", partition, node, parts[2])
    return found


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
            FAILED,
            f"slurm job {jid} {state} again after {requeues} re-queue(s){where}",
            code,
            sig or None,
            outcome=KILLED,
        )
    meaning = FAILURES.get(state, "ended")
    if state == "FAILED" and sig:
        detail = f"killed by {signal_name(sig)}"
    elif state == "FAILED" and code is not None:
        detail = f"{'bad config' if code == 2 else 'exit'} {code}"
    else:
        detail = meaning
    reason = f"slurm job {jid} {state}{where}: {detail}{words}"
    return Ended(FAILED, reason, code, sig or None, outcome=FAILURE_OUTCOMES.get(state))
