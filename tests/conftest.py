"""Shared test set-up: the `gpu` marker skips without CUDA (checked lazily: ftui tests never import torch)."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# A shell starts background jobs (`nohup .ci/run &`) with SIGINT ignored, and children inherit an ignored
# signal: the tests that send Ctrl+C to `ftui logs -f` would then wait forever. Python's own handler is reset
# to the default at exec, so the processes the tests start get a normal Ctrl+C.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in gpu_items:
            item.add_marker(skip)
