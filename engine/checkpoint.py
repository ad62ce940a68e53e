"""Checkpoints: atomic `torch.save` of tensors and plain types only, step-numbered, newest K kept, `final.pt`.

Layout (docs/run-directory.md): `RUN_DIR/checkpoints/step-00001000.pt` ... and `RUN_DIR/checkpoints/final.pt`.
A checkpoint is a dict: model (the uncompiled state_dict), optimizer, step, epoch, config (plain dict),
model_config (plain dict), rng (torch CPU and CUDA states), version, and for a fine-tune `parent` (the path
and digest of the checkpoint its weights started from). Loaded with `weights_only=True`.

A checkpoint's digest is the sha256 of the file's bytes (hex), computed by the engine when it writes or reads
the file, so ftui can tell which weights a run or an evaluation used without hashing big files itself.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import torch

from engine.config import ModelConfig
from engine.filelock import atomic_write_bytes, no_space_message, out_of_space

CHECKPOINT_DIR = "checkpoints"
FINAL_NAME = "final.pt"
FORMAT_VERSION = 1
_STEP_RE = re.compile(r"^step-(\d{8,})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not one of ours; the message names the file."""


def step_name(step: int) -> str:
    return f"step-{step:08d}.pt"


def digest_bytes(data: bytes) -> str:
    """The digest of a checkpoint's bytes: sha256, 64 hex digits (docs/run-directory.md)."""
    return hashlib.sha256(data).hexdigest()


def save_checkpoint(path: Path, state: dict[str, Any]) -> str:
    """Write `state` to `path` atomically; returns the digest of the bytes written."""
    buffer = io.BytesIO()  # serialised once in memory, so the digest is of exactly the bytes on disk
    torch.save(state, buffer)
    data = buffer.getvalue()
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        if out_of_space(e):  # in words, not torch's "enforce fail at inline_container.cc"
            raise CheckpointError(
                f"{path}: cannot save the checkpoint: {no_space_message(path.parent)}"
            ) from None
        raise
    return digest_bytes(data)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return load_checkpoint_digest(path, map_location)[0]


def load_checkpoint_digest(
    path: Path, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], str]:
    """The checkpoint at `path` and the digest of the bytes it was read from (one read of the file).
    Raises CheckpointError for a missing, damaged or foreign file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = path.read_bytes()
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, pickle errors, EOFError... for a damaged file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        raise CheckpointError(f"{path}: not an ftui engine checkpoint (no model / model_config)")
    return state, digest_bytes(data)


def step_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Step checkpoints of a run, oldest first."""
    folder = run_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _STEP_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = step_checkpoints(run_dir)
    return found[-1][1] if found else None


def prune_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` step checkpoints (final.pt is never touched)."""
    found = step_checkpoints(run_dir)
    doomed = [p for _, p in found[:-keep]] if keep > 0 else [p for _, p in found]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    # RNG states must be CPU byte tensors; a checkpoint loaded with map_location="cuda" moved them.
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def check_model_config(state: dict[str, Any], cfg: ModelConfig, path: Path) -> None:
    """Raise CheckpointError naming every model field where the checkpoint differs from `cfg`."""
    try:
        theirs = ModelConfig(**state["model_config"]).__dict__
    except TypeError as e:
        raise CheckpointError(f"{path}: unreadable model_config ({e})") from None
    want = cfg.__dict__
    diff = [f"model.{k}: {theirs[k]!r} there, {want[k]!r} here" for k in want if theirs.get(k) != want[k]]
    if diff:
        raise CheckpointError(f"{path}: model shape differs from config.toml ({'; '.join(diff)})")
