"""The queue commands' error paths and `ftui logs -f` (no engine run needed: nothing here gets queued)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftui.cli import main
from ftui.queue.store import Store
from ftui.queue.worker import worker_pid
from tests.conftest import REPO_ROOT

MINI = REPO_ROOT / "tests" / "data" / "mini_study.toml"


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "experiments.toml"
    shutil.copy(MINI, path)
    return path


def test_a_config_clash_launches_nothing(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = registry.parent / "runs" / "base"
    base.mkdir(parents=True)
    (base / "config.toml").write_text('name = "base"\nkind = "pretrain"\nseed = 1\n')  # another config ...
    (base / "events.jsonl").write_text('{"t": 1, "event": "start", "action": "train"}\n')  # ... that started
    assert main(["--registry", str(registry), "launch", "single-1"]) == 2
    err = capsys.readouterr().err
    assert "base" in err and "different config" in err
    assert Store(registry.parent / "runs").jobs() == []
    assert not (registry.parent / "runs" / "single-1" / "config.toml").exists()
    assert worker_pid(registry.parent / "runs") is None


def test_eval_of_an_untrained_run_is_refused(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--registry", str(registry), "eval", "single-2"]) == 1
    assert "single-2 has no checkpoints/final.pt" in capsys.readouterr().out
    assert Store(registry.parent / "runs").jobs() == []


def test_bad_patterns_and_options_after_the_command(
    registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--registry", str(registry), "launch", "singel-1"]) == 2
    assert "singel-1" in capsys.readouterr().err
    assert main(["launch", "single-1", "--registry", str(registry), "--profile", "huge"]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err
    assert main(["--registry", str(registry), "cancel", "pair-*"]) == 0
    assert "nothing to cancel" in capsys.readouterr().out
    assert main(["--registry", str(registry), "retry", "nothing-like-it"]) == 2
    assert main(["--registry", str(registry), "logs", "pair-1"]) == 1
    assert "no log yet" in capsys.readouterr().err
    archived = registry.parent / "runs" / "pair-1"  # a finished run brought back without its log
    archived.mkdir(parents=True, exist_ok=True)
    (archived / "eval.json").write_text("{}")
    assert main(["--registry", str(registry), "logs", "pair-1"]) == 1
    assert "finished run's folder holds no log (a results archive keeps eval.json" in capsys.readouterr().err
    assert main(["--registry", str(registry / "missing.toml"), "list"]) == 2


def test_logs_follow_prints_appended_lines_and_ctrl_c_only_stops_following(registry: Path) -> None:
    run_dir = registry.parent / "runs" / "single-1"
    run_dir.mkdir(parents=True)
    log = run_dir / "train.log"
    log.write_text("first line\n")
    cmd = [
        sys.executable,
        "-m",
        "ftui",
        "--registry",
        str(registry),
        "logs",
        "single-1",
        "-f",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=registry.parent)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "first line\n"
        with open(log, "a") as f:
            f.write("appended while following\n")
        assert proc.stdout.readline() == "appended while following\n"
        time.sleep(0.1)
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl+C sends
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
