"""Run folders with lineage written as the engine writes it (docs/run-directory.md): events.jsonl with
checkpoint digests and parent records, eval.json with the checkpoint it scored. For the stale tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def append_events(run_dir: Path, *records: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "events.jsonl", "a") as f:
        for record in records:
            f.write(json.dumps({"t": 1.0, **record}) + "\n")


def train(run_dir: Path, digest: str | None, parent: str | None = None) -> None:
    """A finished training: start, the final checkpoint's event, end (digests left out when None: an older
    engine), and the final.pt file."""
    lineage = {"parent": {"path": "../pt/checkpoints/final.pt", "digest": parent}} if parent else {}
    final: dict[str, Any] = {"event": "checkpoint", "step": 8, "path": "checkpoints/final.pt", **lineage}
    if digest is not None:
        final["digest"] = digest
    append_events(
        run_dir,
        {"event": "start", "action": "train", "resumed_from_step": 0, **lineage},
        final,
        {"event": "end", "action": "train", "reason": "finished", "step": 8},
    )
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    (run_dir / "checkpoints" / "final.pt").write_bytes(b"weights")


def evaluate(run_dir: Path, digest: str | None, checkpoint: str = "checkpoints/final.pt") -> None:
    report: dict[str, Any] = {"format": 1, "checkpoint": checkpoint, "step": 8, "sets": {}}
    if digest is not None:
        report["checkpoint_digest"] = digest
    (run_dir / "eval.json").write_text(json.dumps(report))


def make_stale(runs_dir: Path, parent: str, children: list[str]) -> None:
    """`children` fine-tuned from `parent`'s final.pt, then `parent` trained again: every child is stale."""
    train(runs_dir / parent, "parent-1")
    for child in children:
        train(runs_dir / child, f"{child}-1", parent="parent-1")
    train(runs_dir / parent, "parent-2")
