"""Which GPUs the worker may use, and the slots (one per concurrent job) built from the runner settings.

`nvidia-smi` numbers GPUs in PCI bus order; CUDA numbers them fastest-first unless
`CUDA_DEVICE_ORDER=PCI_BUS_ID`. So every GPU job gets both variables, and index N means the same card to
nvidia-smi, to the user and to CUDA.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    """One place a job can run: a GPU index, or None for a CPU slot."""

    index: int  # position among the worker's slots (stable for the worker's life)
    gpu: int | None
    threads: int | None = None  # CPU slots: the cores' share of one job (OMP_NUM_THREADS)

    @property
    def label(self) -> str:
        return "cpu" if self.gpu is None else f"gpu{self.gpu}"


def detect_gpus(timeout_s: float = 10.0) -> list[int]:
    """GPU indices reported by `nvidia-smi`; empty when it is missing or fails (CPU-only machine)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted(int(line) for line in (s.strip() for s in out.splitlines()) if line.isdigit())


def build_slots(
    gpus: str | Sequence[int], jobs_per_gpu: int, cpu_jobs: int, detected: Sequence[int] | None = None
) -> list[Slot]:
    """Slots for the settings: `gpus` is "auto" (every detected GPU) or indices; no GPU -> CPU slots."""
    if isinstance(gpus, str):
        if gpus != "auto":
            raise ValueError(f"runner.gpus: expected 'auto' or a list of GPU indices, got {gpus!r}")
        chosen = list(detect_gpus() if detected is None else detected)
    else:
        chosen = list(gpus)
    if chosen:
        per = max(1, jobs_per_gpu)
        return [Slot(i, gpu) for i, gpu in enumerate(g for g in chosen for _ in range(per))]
    # CPU jobs share the cores instead of each starting one thread per core: on a 2-core machine two tiny
    # smoke runs with two threads each ran ~2x slower than with one (thread contention), not faster. The
    # worker narrows this to the jobs actually running (a pretraining run alone gets every core).
    jobs = max(1, cpu_jobs)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    return [Slot(i, None, threads) for i in range(jobs)]


def job_env(base: Mapping[str, str], slot: Slot) -> dict[str, str]:
    """The environment of a job on `slot`. CPU slots get their share of the cores as OMP_NUM_THREADS (unless
    the user set it) and no CUDA settings (no CUDA_VISIBLE_DEVICES="")."""
    env = dict(base)
    if slot.gpu is None and slot.threads is not None:
        env.setdefault("OMP_NUM_THREADS", str(slot.threads))
    if slot.gpu is not None:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = str(slot.gpu)
    return env


def current_env() -> dict[str, str]:
    return dict(os.environ)
