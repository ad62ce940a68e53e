"""A checkpoint saved onto a full disk: the engine says so in words (and how much is free), not with PyTorch's
`enforce fail at inline_container.cc`, and leaves no temporary file. The full disk is a real tiny tmpfs in a
private mount namespace (tests/mounts.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.mounts import in_namespace, needs_mounts, small_disk

SAVE = """
import sys
from pathlib import Path
import torch
from engine.checkpoint import CheckpointError, save_checkpoint
path = Path(sys.argv[1]) / "run" / "checkpoints" / "step-00000004.pt"
try:
    save_checkpoint(path, {"model": {"w": torch.zeros(1_000_000)}})  # 4 MB onto a 1 MB disk
except CheckpointError as e:
    print(f"CheckpointError: {e}")
print("left:", sorted(p.name for p in path.parent.iterdir()))
"""


@needs_mounts
def test_a_checkpoint_on_a_full_disk_names_the_disk_and_the_bytes_free(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    out = in_namespace(small_disk(disk, "1m"), sys.executable, "-c", SAVE, str(disk))
    assert out.returncode == 0, out.stderr
    folder = disk / "run" / "checkpoints"
    lines = out.stdout.splitlines()
    path = folder / "step-00000004.pt"
    assert lines[0].startswith(f"CheckpointError: {path}: cannot save the checkpoint: ")
    assert f"no space left on the disk holding {folder} (" in lines[0] and lines[0].endswith(" bytes free)")
    assert "inline_container" not in out.stdout
    assert lines[1] == "left: []"  # the partial temporary file is removed
