"""GPU memory and utilisation of each running job, from NVML (NVIDIA's `nvidia-ml-py`, module `pynvml`).

NVML lists the processes that hold a context on each GPU (`nvmlDeviceGetComputeRunningProcesses`: pid, used
memory). A process belongs to a job when it is the job's engine pid or sits in the job's process group (the
worker starts each engine in its own group, so a DataLoader worker or any child counts for its job).
Utilisation per process comes from `nvmlDeviceGetProcessUtilization` (SM %, the newest sample of the last few
seconds); when the driver gives no samples and only one job uses the device, the device's utilisation is
that job's.

Nothing here is needed to run jobs: `pynvml` is imported on first use, which is the first refresh that shows
a running job on a GPU slot (a CPU machine never imports it). When the import or `nvmlInit` fails (no
driver, no GPU, the library missing) that is remembered and never tried again, and every job shows no
figures, with no error. A failing query later (a GPU fallen off the bus) leaves that refresh's figures
unknown.

Pids are the ones NVML reports; inside a container with its own pid namespace they may not be ours, and then
nothing matches (figures stay unknown). Checked against recorded NVML answers only, not yet on hardware.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ftui.queue import procs

# Utilisation samples newer than this count (NVML keeps a ring buffer of recent samples per process).
SAMPLE_WINDOW_S = 5.0


@dataclass(frozen=True)
class JobGpu:
    """What NVML says of one job's processes."""

    memory_mib: float | None  # None: NVML does not report per-process memory here (MIG, WDDM)
    util_percent: int | None
    devices: tuple[int, ...]


@dataclass(frozen=True)
class JobProcs:
    """The processes of one running job: its engine pid and its process group."""

    pid: int | None
    pgid: int | None


class GpuUsage:
    """NVML, initialised once on first use. `failed` stays True for good after a failed init."""

    def __init__(self, module_name: str = "pynvml") -> None:
        self.module_name = module_name
        self.failed = False
        self.init_attempts = 0
        self._nvml: Any = None
        self._lock = threading.Lock()  # the app reads rows from more than one worker thread

    def _get(self) -> Any:
        if self._nvml is not None or self.failed:
            return self._nvml
        self.init_attempts += 1
        try:
            nvml = importlib.import_module(self.module_name)
            nvml.nvmlInit()
        except Exception:  # ImportError, NVMLError (no driver, no device), OSError: all mean "no GPU figures"
            self.failed = True
            return None
        self._nvml = nvml
        return nvml

    def usage(self, jobs: Mapping[str, JobProcs]) -> dict[str, JobGpu]:
        """Figures for the jobs (key -> processes) that NVML shows on some GPU; others are left out."""
        if not jobs:
            return {}
        with self._lock:
            nvml = self._get()
            if nvml is None:
                return {}
            try:
                return _measure(nvml, jobs)
            except Exception:  # NVMLError mid-way: this refresh shows nothing, the next one tries again
                return {}


def _measure(nvml: Any, jobs: Mapping[str, JobProcs]) -> dict[str, JobGpu]:
    owner = _owner_lookup(jobs)
    memory: dict[str, float | None] = {}
    util: dict[str, int | None] = {}
    devices: dict[str, list[int]] = {}
    since = int((time.time() - SAMPLE_WINDOW_S) * 1e6)  # NVML timestamps: microseconds since the epoch
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        on_device: dict[str, list[int]] = {}
        for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
            key = owner(int(proc.pid))
            if key is None:
                continue
            on_device.setdefault(key, []).append(int(proc.pid))
            used = proc.usedGpuMemory
            if used is None or memory.get(key, 0.0) is None:
                memory[key] = None
            else:
                memory[key] = memory.get(key, 0.0) + used / 2**20  # type: ignore[operator]
        if not on_device:
            continue
        per_pid = _process_util(nvml, handle, since)
        for key, pids in on_device.items():
            devices.setdefault(key, []).append(index)
            found = [per_pid[p] for p in pids if p in per_pid]
            if found:
                util[key] = min(100, max(util.get(key) or 0, sum(found)))
            elif len(on_device) == 1:
                util[key] = max(util.get(key) or 0, int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            else:
                util.setdefault(key, None)
    return {key: JobGpu(memory.get(key), util.get(key), tuple(devices[key])) for key in devices}


def _process_util(nvml: Any, handle: Any, since: int) -> dict[int, int]:
    """pid -> SM utilisation % of its newest sample; {} when the driver has no samples (or no support)."""
    try:
        samples = nvml.nvmlDeviceGetProcessUtilization(handle, since)
    except Exception:  # NVML_ERROR_NOT_FOUND: no sample in the window; NOT_SUPPORTED on older boards
        return {}
    newest: dict[int, tuple[int, int]] = {}
    for sample in samples:
        pid, stamp = int(sample.pid), int(sample.timeStamp)
        if pid not in newest or stamp > newest[pid][0]:
            newest[pid] = (stamp, int(sample.smUtil))
    return {pid: value for pid, (_, value) in newest.items()}


def _owner_lookup(jobs: Mapping[str, JobProcs]) -> Any:
    by_pid = {p.pid: key for key, p in jobs.items() if p.pid}
    by_group = {p.pgid: key for key, p in jobs.items() if p.pgid}

    def owner(pid: int) -> str | None:
        if pid in by_pid:
            return by_pid[pid]
        group = procs.process_group(pid)
        return by_group.get(group) if group is not None else None

    return owner


def format_usage(memory_mib: float | None, util_percent: int | None) -> str:
    """ "1.2G 35%" for the home table's GPU column; "" when neither is known."""
    parts = []
    if memory_mib is not None:
        parts.append(f"{memory_mib / 1024:.1f}G" if memory_mib >= 1024 else f"{memory_mib:.0f}M")
    if util_percent is not None:
        parts.append(f"{util_percent}%")
    return " ".join(parts)


# One per process: the CLI and the app share it, so a failed init is tried once per process at most.
shared = GpuUsage()
