"""Real read-only and full file systems for tests, in a private mount namespace.

Tests run as root, and root ignores permission bits, so "read-only" and "disk full" are made real: a bind
mount remounted `ro`, a tiny tmpfs. Each command runs under `unshare -m` (or `unshare -rm`, a user namespace,
without root) with its mounts, which vanish with it: no other process on the machine ever sees them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def _namespace_prefix() -> list[str] | None:
    """The unshare command that gives a private mount namespace where mounting works here, if any."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (
        ["unshare", "-m", "--propagation", "private"],
        ["unshare", "-rm", "--propagation", "private"],
    ):
        try:
            probe = subprocess.run(
                [*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp && touch /tmp/x"],
                capture_output=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return prefix
    return None


NAMESPACE = _namespace_prefix()
needs_mounts = pytest.mark.skipif(
    NAMESPACE is None,
    reason="no private mount namespace (unshare -m needs root, unshare -rm user namespaces): without a real "
    "read-only or full file system the test would prove nothing (root ignores permission bits)",
)


def in_namespace(setup: str, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `cmd` after the shell lines `setup` (its mounts), in a private mount namespace."""
    assert NAMESPACE is not None
    script = f"set -e\n{setup}\nexec {shlex.join(cmd)}"
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [*NAMESPACE, "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


def read_only(folder: Path) -> str:
    """Shell lines that make `folder` a read-only mount of itself."""
    q = shlex.quote(str(folder))
    return f"mount --bind {q} {q}\nmount -o remount,bind,ro {q}"


def small_disk(folder: Path, size: str = "2m") -> str:
    """Shell lines that mount a tmpfs of `size` on `folder`."""
    return f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(folder))}"


FILL = "import sys\ntry:\n    with open(sys.argv[1], 'wb') as f:\n        while True:\n            f.write(b'x' * 4096)\n            f.flush()\nexcept OSError:\n    pass\n"  # noqa: E501


def fill(python: str, path: Path) -> str:
    """A shell line that fills the disk holding `path` with one file."""
    return f"{shlex.quote(python)} -c {shlex.quote(FILL)} {shlex.quote(str(path))}"
