"""`ftui logs` and the app's entry in real subprocesses (issue 13, faults 3 and 12): a hostile log printed to
a terminal (a pseudo-terminal here) or into a pipe, a progress bar followed live, Ctrl+C, and TERM=dumb."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ftui.queue.store import JobSpec, Store
from ftui.registry import load_registry
from tests.conftest import REPO_ROOT

MINI = REPO_ROOT / "tests" / "data" / "mini_study.toml"
HOSTILE_LOG = (
    b"step 1\n"
    + b"\x1b]0;TITLE\x1b\\\x1b[2J\x1b[H"  # set the window title, clear the screen, cursor home
    + b"\x1b[1;31mred\x1b[0m after\n"
    + b"bell\x07 c1 \xc2\x9d0;T2\x07 bad \xff end\n"
    + b"bar\r 50%\r100%\r\n"
)


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "experiments.toml"
    shutil.copy(MINI, path)
    return path


def ftui_cmd(registry: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ftui", "--registry", str(registry), *args]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), **extra}


def write_log(registry: Path, data: bytes) -> Path:
    run_dir = registry.parent / "runs" / "single-1"
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "train.log"
    log.write_bytes(data)
    return log


class PtyProcess:
    """A process whose stdout (and stdin) is a pseudo-terminal, as in an interactive shell."""

    def __init__(self, cmd: Sequence[str], cwd: Path, environ: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            cmd, stdin=slave, stdout=slave, stderr=subprocess.PIPE, cwd=cwd, env=environ, close_fds=True
        )
        os.close(slave)
        self.output = b""

    def read_until(self, wanted: bytes, timeout: float = 30.0) -> bytes:
        """Read the terminal until `wanted` shows (or the process closed it); returns all output so far."""
        deadline = time.monotonic() + timeout
        while wanted not in self.output and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                self.output += chunk
        return self.output

    def finish(self, timeout: float = 30.0) -> tuple[int | None, bytes, str]:
        """(exit code or None when it had to be killed, terminal output, stderr)."""
        try:
            code: int | None = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            self.proc.kill()
            self.proc.wait()
        self.read_until(b"\x00never\x00", timeout=0.5)
        os.close(self.master)
        assert self.proc.stderr is not None
        return code, self.output, self.proc.stderr.read().decode()


def test_logs_to_a_terminal_print_plain_text(registry: Path) -> None:
    write_log(registry, HOSTILE_LOG)
    term = PtyProcess(ftui_cmd(registry, "logs", "single-1"), registry.parent, env(TERM="xterm-256color"))
    code, output, err = term.finish()
    assert (code, err) == (0, "")
    # The pseudo-terminal turns "\n" into "\r\n"; nothing else is a control character.
    assert output.decode().split("\r\n") == [
        "step 1",
        "red after",
        "bell\ufffd c1  bad \ufffd end",
        "100%",
        "",
    ]


def test_logs_into_a_pipe_keep_colours_and_nothing_else(registry: Path) -> None:
    write_log(registry, HOSTILE_LOG + b"unfinished \x1b]0;X")
    done = subprocess.run(ftui_cmd(registry, "logs", "single-1"), capture_output=True, env=env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == (
        "step 1\n\x1b[1;31mred\x1b[0m after\nbell\ufffd c1  bad \ufffd end\n100%\nunfinished \n"
    )
    # -n counts the unfinished last line as a line, as tail does.
    done = subprocess.run(
        ftui_cmd(registry, "logs", "single-1", "-n", "2"), capture_output=True, env=env(), timeout=60
    )
    assert done.stdout.decode() == "100%\nunfinished \n"


def running_job(registry: Path, key: str) -> None:
    """A running training job of `key` in the queue (the state `ftui launch` and the worker make)."""
    runs = {run.key: run for run in load_registry(registry).runs()}
    store = Store(registry.parent / "runs")
    run = runs[key]
    job = store.enqueue([JobSpec(key, run.experiment.name, run.rel_dir, "train", ())]).queued[0]
    store.claim(job.id, "cpu")
    store.close()


def test_follow_draws_a_live_bar_in_place_and_ctrl_c_says_the_run_keeps_running(registry: Path) -> None:
    log = write_log(registry, b"first line\n\r  0%| 0/50")
    running_job(registry, "single-1")
    term = PtyProcess(ftui_cmd(registry, "logs", "single-1", "-f"), registry.parent, env(TERM="xterm"))
    try:
        assert term.read_until(b"0/50").endswith(b"first line\r\n  0%| 0/50")
        with open(log, "ab") as handle:
            handle.write(b"\r 40%| 20/50\x1b]0;TITLE\x07")
        # The live line is redrawn in place with ftui's own carriage return and erase-line.
        assert term.read_until(b"20/50").endswith(b"\r\x1b[K 40%| 20/50")
        with open(log, "ab") as handle:
            handle.write(b"\r100%| 50/50\nnext\n")
        assert term.read_until(b"next\r\n").endswith(b"\r\x1b[K100%| 50/50\r\nnext\r\n")
        term.proc.send_signal(signal.SIGINT)  # what Ctrl+C sends
        code, output, err = term.finish()
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()
    assert code == 0
    assert b"TITLE" not in output and b"\x1b]" not in output
    assert "; single-1 keeps running (stop it with: ftui cancel single-1)" in err
    assert "Traceback" not in err


def test_ctrl_c_in_logs_f_into_a_pipe_says_so_on_stderr(registry: Path) -> None:
    write_log(registry, b"first line\n")
    proc = subprocess.Popen(
        ftui_cmd(registry, "logs", "single-1", "-f"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"first line\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and out == b""
    assert err.decode().startswith("ftui: stopped following ") and "single-1 is not running" in err.decode()


def test_the_app_refuses_a_dumb_terminal_and_names_the_commands_that_work(registry: Path) -> None:
    term = PtyProcess(ftui_cmd(registry), registry.parent, env(TERM="dumb"))
    code, output, err = term.finish(timeout=20)
    assert code == 2, (output[:300], err)
    assert b"\x1b" not in output
    assert "TERM=dumb" in err and "ftui list" in err and "ftui logs" in err
