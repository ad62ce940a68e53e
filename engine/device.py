"""Device and precision policy of a run: where it runs, in which dtype, compiled or CUDA-graphed, and the
versions and device a run's log names at its top. Shared by training and evaluation."""

from __future__ import annotations

import platform

import numpy as np
import torch

import engine

# Compiling costs ~21 s on an H100 and, inside the CUDA graph, saves ~2.2 ms a step (245 -> 532 steps/s at the
# paper shape, bench/gpu_bench.py): it pays after ~10,000 steps.
COMPILE_AUTO_MIN_STEPS = 10_000
COMPILE_MODE = "default"  # torch.compile mode on CUDA (bench/train_bench.py compares the modes)
GRAPH_AUTO_MIN_STEPS = 200  # CUDA-graph capture (~1 s) pays for itself within a few hundred steps


def resolve_device(policy: str) -> torch.device:
    if policy == "cuda" or (policy == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError('train.device = "cuda" but CUDA is not available on this machine')
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_amp_dtype(policy: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain float32."""
    if policy == "bfloat16" or (policy == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def should_compile(policy: str, device: torch.device, total_steps: int) -> bool:
    if policy == "on":
        return True
    return policy == "auto" and device.type == "cuda" and total_steps >= COMPILE_AUTO_MIN_STEPS


def should_capture(policy: str, device: torch.device, total_steps: int) -> bool:
    """CUDA-graph the whole step (engine/cuda_graphs.py): capture costs ~1 s, so any real run pays for it."""
    if device.type != "cuda" or policy == "off":
        return False
    return policy == "on" or total_steps >= GRAPH_AUTO_MIN_STEPS


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
    return f"cpu ({torch.get_num_threads()} threads)"


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "engine": engine.__version__,
    }
