"""Which GPUs the worker may use, and the slots (one per concurrent job) built from the runner settings.

`nvidia-smi` numbers GPUs in PCI bus order; CUDA numbers them fastest-first unless
`CUDA_DEVICE_ORDER=PCI_BUS_ID`. So every GPU job gets both variables, and index N means the same card to
nvidia-smi, to the user and to CUDA.

With `gpus = "auto"` the worker uses the GPUs of the CUDA_VISIBLE_DEVICES it was started with (it inherits
the environment of `ftui launch` or the app), read the way CUDA reads it: indices, GPU UUIDs or a unique
prefix of one, MIG devices (`MIG-<uuid>`, `MIG-GPU-<uuid>/<gi>/<ci>`), the list ending at the first entry
that names no device; empty means no GPU. UUIDs are mapped to indices with
`nvidia-smi --query-gpu=index,uuid`; a MIG device keeps its name (its job gets it as CUDA_VISIBLE_DEVICES).
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
    device: str | None = None  # a MIG device: its name, for the job's CUDA_VISIBLE_DEVICES

    @property
    def label(self) -> str:
        if self.device is not None:
            short = self.device[:12]  # "MIG-5c4d3e2f": a prefix CUDA accepts too
            return short if self.gpu is None else f"gpu{self.gpu}:{short}"
        return "cpu" if self.gpu is None else f"gpu{self.gpu}"


@dataclass(frozen=True)
class Gpu:
    """A device named by CUDA_VISIBLE_DEVICES that is not a whole GPU: a MIG device, on GPU `index`."""

    index: int | None  # None: nvidia-smi did not say which GPU holds it
    device: str


def query_gpus(timeout_s: float = 10.0) -> list[tuple[int, str]] | None:
    """(index, UUID) of every GPU `nvidia-smi` lists; None when it is missing or fails (CPU-only machine)."""
    out = _nvidia_smi(["--query-gpu=index,uuid", "--format=csv,noheader"], timeout_s)
    if out is None:
        return None
    found = []
    for line in out.splitlines():
        index, _, uuid = (part.strip() for part in line.partition(","))
        if index.isdigit():
            found.append((int(index), uuid))
    return sorted(found)


def _nvidia_smi(args: list[str], timeout_s: float) -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        return subprocess.run(
            [exe, *args], capture_output=True, text=True, timeout=timeout_s, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def _mig_parents(timeout_s: float) -> dict[str, int]:
    """MIG device UUID -> the index of its GPU, from `nvidia-smi -L`."""
    parents: dict[str, int] = {}
    gpu: int | None = None
    for line in (_nvidia_smi(["-L"], timeout_s) or "").splitlines():
        words = line.split()
        if words[:1] == ["GPU"] and len(words) > 1 and words[1].rstrip(":").isdigit():
            gpu = int(words[1].rstrip(":"))
        elif "(UUID: MIG-" in line and gpu is not None:
            parents[line.split("(UUID: ", 1)[1].rstrip(")").strip()] = gpu
    return parents


def choose_gpus(
    environ: Mapping[str, str] | None = None, timeout_s: float = 10.0
) -> tuple[list[int | Gpu], str]:
    """The GPUs for `gpus = "auto"`, and a sentence saying why (for the worker's log)."""
    env = os.environ if environ is None else environ
    found = query_gpus(timeout_s)
    if not found:
        why = "nvidia-smi not found or failed" if found is None else "nvidia-smi lists no GPU"
        return [], f"none, CPU jobs ({why})"
    listed = ", ".join(str(index) for index, _ in found)
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [index for index, _ in found], f"{listed} (every GPU nvidia-smi lists)"
    if not visible.strip():
        return [], "none, CPU jobs (CUDA_VISIBLE_DEVICES is empty)"
    chosen: list[int | Gpu] = []
    note = ""
    parents: dict[str, int] | None = None
    for entry in (e.strip() for e in visible.split(",")):
        if entry.isdigit():
            matches = [index for index, _ in found if index == int(entry)]
        elif entry.startswith("GPU-"):
            matches = [index for index, uuid in found if uuid.startswith(entry)]
        elif entry.startswith("MIG-GPU-"):  # the old form names its GPU: MIG-GPU-<uuid>/<gi>/<ci>
            gpu_uuid = entry[len("MIG-") :].split("/")[0]
            chosen.append(Gpu(next((i for i, uuid in found if uuid == gpu_uuid), None), entry))
            continue
        elif entry.startswith("MIG-"):
            parents = _mig_parents(timeout_s) if parents is None else parents
            chosen.append(Gpu(parents.get(entry), entry))
            continue
        else:
            matches = []
        if len(matches) != 1:  # CUDA ignores the rest of the list after an entry that names no device
            note = f"; {entry} is not a GPU nvidia-smi lists, so it and what follows it are ignored"
            if not chosen:
                note = f"; {entry} names no device"
            break
        if matches[0] not in chosen:
            chosen.append(matches[0])
    shown = ", ".join(str(g) if isinstance(g, int) else g.device for g in chosen) or "none, CPU jobs"
    return chosen, f"{shown} (CUDA_VISIBLE_DEVICES={visible}; nvidia-smi lists {listed}{note})"


def detect_gpus(timeout_s: float = 10.0) -> list[int | Gpu]:
    """The GPUs for `gpus = "auto"` (see `choose_gpus`)."""
    return choose_gpus(timeout_s=timeout_s)[0]


def build_slots(
    gpus: str | Sequence[int],
    jobs_per_gpu: int,
    cpu_jobs: int,
    detected: Sequence[int | Gpu] | None = None,
) -> list[Slot]:
    """Slots for the settings: `gpus` is "auto" (the detected GPUs) or indices; no GPU -> CPU slots."""
    chosen: list[int | Gpu]
    if isinstance(gpus, str):
        if gpus != "auto":
            raise ValueError(f"runner.gpus: expected 'auto' or a list of GPU indices, got {gpus!r}")
        chosen = list(detect_gpus() if detected is None else detected)
    else:
        chosen = list(gpus)
    if chosen:
        per = max(1, jobs_per_gpu)
        each = [g for g in chosen for _ in range(per)]
        return [
            Slot(i, g) if isinstance(g, int) else Slot(i, g.index, None, g.device) for i, g in enumerate(each)
        ]
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
    if slot.device is not None or slot.gpu is not None:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = slot.device if slot.device is not None else str(slot.gpu)
    return env
