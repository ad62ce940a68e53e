"""Helpers shared by the queue tests that drive real processes (test_runner.py, test_slurm.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

MINI = REPO_ROOT / "tests" / "data" / "mini_study.toml"


def run_ftui(
    registry: Path, *args: str, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """`ftui --registry REGISTRY ARGS...` in a separate process that exits, like a user's shell command."""
    cmd = [sys.executable, "-m", "ftui", "--registry", str(registry), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=dict(env), cwd=registry.parent, timeout=timeout
    )


def list_json(registry: Path, *, env: Mapping[str, str], timeout: float) -> dict[str, dict[str, Any]]:
    """`ftui list --json`, keyed by run."""
    out = run_ftui(registry, "list", "--json", env=env, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return {r["key"]: r for r in json.loads(out.stdout)["runs"]}


def wait_until(check: Callable[[], Any], what: str, *, timeout: float, poll: float) -> Any:
    """Poll `check` until it returns something truthy (returned), or fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(poll)


def events(run_dir: Path) -> list[dict[str, Any]]:
    """The complete records of a run's events.jsonl (a torn last line is skipped)."""
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def mini_study_with(
    folder: Path, values: Mapping[str, str], replace: Mapping[str, str] | None = None
) -> Path:
    """folder/experiments.toml: the mini study with some `key = value` lines changed (each must exist once)
    and, optionally, some text replaced."""
    text = MINI.read_text()
    for key, value in values.items():
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
        assert n == 1, key
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "experiments.toml"
    path.write_text(text)
    return path


# What schema 5 added (ftui/queue/model.py REVISIONS), undone: an ftui.db as ftui wrote it before.
BEFORE_SCHEMA_5 = (
    "DROP TRIGGER jobs_rev_insert; DROP TRIGGER jobs_rev_update; DROP TRIGGER deps_rev_insert;"
    " DROP TRIGGER deps_rev_delete; DROP TABLE revisions; ALTER TABLE jobs DROP COLUMN rev;"
)
