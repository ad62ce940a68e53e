"""Processes as the runner sees them: identity (pid + start time), liveness, and process-group signals.

A pid alone does not identify a process: after a crash or a reboot the kernel hands the same number to an
unrelated process. So a job records the pid together with the process start time (field 22 of
`/proc/<pid>/stat`, in clock ticks since boot) and a process is "ours" only when both match. Linux only.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may itself hold spaces and parentheses)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    close = raw.rfind(")")
    if close < 0:
        return None
    # fields[0] is field 3 (state); field N of proc(5) is fields[N - 3].
    return raw[close + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (proc(5) field 22); None if no such pid."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])


def process_group(pid: int) -> int | None:
    """The process group of `pid` (proc(5) field 5); None if no such pid."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 3:
        return None
    return int(fields[2])


def is_alive(pid: int | None, start: int | None) -> bool:
    """True when `pid` runs and is the process that started at `start` (a zombie counts as gone)."""
    if pid is None or pid <= 0:
        return False
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return False
    if fields[0] in ("Z", "X"):  # exited, waiting to be reaped by a parent that may never come back
        return False
    return start is None or int(fields[19]) == start


def boot_time() -> float:
    """Unix time of the last boot: now minus /proc/uptime (10 ms precision; /proc/stat's btime is whole
    seconds, and process start times are counted on the same clock as the uptime)."""
    try:
        uptime = float((PROC / "uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return time.time() - uptime


def ticks_to_unix(ticks: int | None) -> float | None:
    """Convert a start time in clock ticks since boot to unix time (for display)."""
    if ticks is None:
        return None
    return boot_time() + ticks / _CLOCK_TICKS


def group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes in process group `pgid`."""
    members: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        # fields[2] is proc(5) field 5, the process group id.
        if fields and len(fields) > 2 and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send `sig` to every process of group `pgid`; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def kill_exact(pid: int, start: int | None, sig: signal.Signals) -> bool:
    """Send `sig` to `pid` only if it is the process that started at `start`; False when it is not (gone, or
    the pid now belongs to another process). A pidfd pins the process between the check and the signal, so
    a pid reused in that instant is never hit (plain kill on kernels without pidfd)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):  # no pidfd on this kernel: check, then signal (a tiny race)
        if not is_alive(pid, start):
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True
    try:
        if not is_alive(pid, start):
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


def environ_of(pid: int) -> dict[str, str]:
    """The environment a process was started with (empty when unreadable)."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def find_tagged(tag: str, value: str) -> list[int]:
    """Pids of live processes whose environment has `tag=value` (finds a job started just before a crash)."""
    found: list[int] = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and environ_of(int(entry.name)).get(tag) == value:
            pid = int(entry.name)
            if is_alive(pid, None):
                found.append(pid)
    return found


def wait_gone(pgid: int, timeout_s: float, poll_s: float = 0.05) -> bool:
    """Wait until no process of group `pgid` is left; True when it emptied within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not group_members(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
