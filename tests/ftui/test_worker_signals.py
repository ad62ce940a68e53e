"""Issue 13, fault 1: the worker's signal handlers must never deadlock or nest until RecursionError.

On the old code a burst of SIGCHLD killed a worker polling every 0.0005 s within two seconds with
`RecursionError ... lost sys.stderr` (its handler called `threading.Event.set()`, which takes a lock the
interrupted main thread may hold). Every handler in ftui/ and engine/ may only assign a flag; the wake-up
goes through `signal.set_wakeup_fd` (ftui/queue/wakeup.py).
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.ftui.queue_helpers import wait_until


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A real worker on an empty runs folder, polling every 0.5 ms (as in the report), never idle-exiting."""
    runs = tmp_path / "runs"
    runs.mkdir()
    log = runs / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ftui.queue.worker", str(runs), "--poll", "0.0005", "--idle-exit", "600"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: b"started" in log.read_bytes(), "the worker to start", timeout=30, poll=0.02)
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_sigchld_burst_neither_kills_nor_hangs_the_worker(
    worker: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, log = worker
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 3.0 and proc.poll() is None:  # ~100,000 signals, many thousands delivered
        for _ in range(100):
            os.kill(proc.pid, signal.SIGCHLD)
        sent += 100
        time.sleep(0.001)
    assert proc.poll() is None, f"the worker died after {sent} SIGCHLD:\n{log.read_text()[-2000:]}"
    os.kill(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker hangs after {sent} SIGCHLD and a SIGTERM:\n{log.read_text()[-2000:]}")
    assert code == 0, log.read_text()[-2000:]
    assert "stopping" in log.read_text()


# ---- the audit: every signal handler in ftui/ and engine/ only assigns ------------------------------------
FLAG_ONLY = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Pass)


def _problems_in_handler(fn: ast.FunctionDef | ast.Lambda) -> list[str]:
    """What a handler does besides assigning (calls, locks, I/O all go through a call)."""
    body = [fn.body] if isinstance(fn, ast.Lambda) else fn.body
    problems = []
    for stmt in body:
        is_docstring = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        if not (isinstance(stmt, FLAG_ONLY) or is_docstring):
            problems.append(f"line {stmt.lineno}: {type(stmt).__name__} (only assignments are safe)")
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call | ast.Await | ast.Yield | ast.YieldFrom):
                problems.append(f"line {node.lineno}: {ast.unparse(node)} (a handler must not call anything)")
    return problems


def _audit(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    functions: dict[str, ast.FunctionDef] = {}
    loop_targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            functions.setdefault(node.name, node)
        if isinstance(node, ast.For):
            loop_targets |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
    problems: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and ast.unparse(node.func) in ("signal.signal", "signal")):
            continue
        if len(node.args) < 2:
            continue
        handler = node.args[1]
        where = f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
        text = ast.unparse(handler)
        if text in ("signal.SIG_IGN", "signal.SIG_DFL"):
            continue
        if isinstance(handler, ast.Lambda):
            target: ast.FunctionDef | ast.Lambda | None = handler
        elif isinstance(handler, ast.Name | ast.Attribute):
            name = handler.id if isinstance(handler, ast.Name) else handler.attr
            target = functions.get(name)
            if target is None and isinstance(handler, ast.Name) and handler.id in loop_targets:
                continue  # restoring the handlers saved from earlier signal.signal calls
        else:
            target = None
        if target is None:
            problems.append(f"{where}: cannot audit handler {text}")
            continue
        problems += [f"{where} ({text}) {p}" for p in _problems_in_handler(target)]
    return problems


def test_every_signal_handler_in_ftui_and_engine_only_sets_a_flag() -> None:
    files = sorted((REPO_ROOT / "ftui").rglob("*.py")) + sorted((REPO_ROOT / "engine").rglob("*.py"))
    installing = [p for p in files if "signal.signal(" in p.read_text()]
    assert installing, "the audit found no signal handler at all: is it looking in the right place?"
    problems = [p for path in installing for p in _audit(path)]
    assert problems == [], "\n".join(problems)
