"""Helpers shared by the engine's training and evaluation tests: tiny run directories in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_DIR = REPO_ROOT / "tests" / "data" / "smoke_run"

TINY_MODEL: dict[str, Any] = {"n_layer": 2, "d_model": 32, "n_head": 2, "d_mlp": 64, "max_seq_len": 64}
TINY_TRAIN: dict[str, Any] = {
    "batch_size": 16,
    "epochs": 2,
    "lr": 3e-3,
    "warmup_steps": 5,
    "log_every_steps": 5,
    "log_every_s": 60.0,
    "checkpoint_every": 10,
    "keep_checkpoints": 2,
    "device": "cpu",
    "compile": "off",
}
TINY_EVAL: dict[str, Any] = {
    "seed": 1,
    "n": 8,
    "sets": ["standard", "atlantis"],
    "tasks": ["distance", "compass"],
    "batch_size": 64,
}


def tiny_config(data_root: Path, **overrides: Any) -> dict[str, Any]:
    """A tiny pretraining config (2 tasks, 160 rows); nested tables are merged with `overrides`."""
    cfg: dict[str, Any] = {
        "name": "tiny",
        "kind": "pretrain",
        "seed": 7,
        "tasks": ["distance", "compass"],
        "data_root": str(data_root),
        "data": {
            "seed": 0,
            "parts": [
                {"task": "distance", "set": "standard", "n": 80},
                {"task": "compass", "set": "standard", "n": 80},
            ],
        },
        "model": dict(TINY_MODEL),
        "train": dict(TINY_TRAIN),
        "eval": dict(TINY_EVAL),
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def write_run(run_dir: Path, cfg: dict[str, Any]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_bytes(tomli_w.dumps(cfg).encode())
    return run_dir


def events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def engine_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine", *args]


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # Tiny models run best on one thread, and CI's two cores are shared with the test process itself.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_engine(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        engine_cmd(*args), cwd=REPO_ROOT, env=engine_env(), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models on one thread: on a busy 2-core machine two spinning threads per op can be 40x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
