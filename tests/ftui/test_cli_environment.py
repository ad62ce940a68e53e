"""What the user's environment and files may hold, through real `ftui` processes: the umask decides the mode
of every file ftui and the engine write; a registry saved with a UTF-8 BOM; a closed stdout (`ftui validate
| head -1`); an inherited MPLBACKEND that Matplotlib refuses."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.data.make_eval_fixtures import make_fixtures

MINI = REPO_ROOT / "tests" / "data" / "mini_study.toml"
ENV = os.environ | {"PYTHONPATH": str(REPO_ROOT)}


def ftui(
    *args: str, umask: int = 0o022, env: dict[str, str] | None = None, stdout: int = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftui", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env or ENV,
        umask=umask,
        timeout=120,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("evaluated")
    make_fixtures(MINI, runs)
    return runs


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask022", "umask077"])
def test_every_atomic_writer_keeps_the_mode_the_umask_gives(
    umask: int, tmp_path: Path, evaluated: Path
) -> None:
    """config.toml (ftui prepare), an exported figure and data file (ftui heatmap --export) and the engine's
    atomic writer (checkpoints, eval.json) are created like any other file: 0666 minus the umask."""
    expected = 0o666 & ~umask
    runs = tmp_path / "runs"
    out = ftui("--registry", str(MINI), "--runs", str(runs), "prepare", "base", umask=umask)
    assert out.returncode == 0, out.stderr
    assert mode(runs / "base" / "config.toml") == expected
    for name in ("grid.png", "grid.csv"):
        out = ftui(
            "--registry", str(MINI), "--runs", str(evaluated), "heatmap", "pair", "--export",
            str(tmp_path / name), umask=umask,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert mode(tmp_path / name) == expected, name
    engine_writer = (
        "from engine.filelock import atomic_write_bytes;"
        "atomic_write_bytes(Path(sys.argv[1]), b'{}');"
        "atomic_write_bytes(Path(sys.argv[2]), lambda f: f.write(b'x'))"
    )
    python_with_umask(engine_writer, umask, tmp_path / "eval.json", tmp_path / "ck" / "final.pt")
    assert mode(tmp_path / "eval.json") == expected and mode(tmp_path / "ck" / "final.pt") == expected
    batch_writer = (  # the Slurm job scripts: renamed into place unsynced, then one sync of the file system
        "from ftui.atomic import replace_unsynced, sync_file_system;"
        "replace_unsynced(Path(sys.argv[1]), b'#!/bin/bash'); sync_file_system(Path(sys.argv[1]).parent)"
    )
    python_with_umask(batch_writer, umask, tmp_path / "job.sbatch")
    assert (
        mode(tmp_path / "job.sbatch") == expected and (tmp_path / "job.sbatch").read_bytes() == b"#!/bin/bash"
    )
    assert not [p.name for p in tmp_path.rglob("*.tmp")]  # no temp file left behind


def python_with_umask(code: str, umask: int, *paths: Path) -> None:
    """Run `code` (with sys and Path imported, `paths` as its arguments) in a process with `umask`."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; " + code, *map(str, paths)],
        env=ENV,
        umask=umask,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_registry_saved_with_a_utf8_bom_is_read(tmp_path: Path) -> None:
    registry = tmp_path / "experiments.toml"
    registry.write_bytes(b"\xef\xbb\xbf" + MINI.read_bytes())
    out = ftui("--registry", str(registry), "validate", "--json")
    assert out.returncode == 0, out.stderr
    assert '"base"' in out.stdout


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_closed_stdout_ends_quietly_with_exit_0(tmp_path: Path, unbuffered: str) -> None:
    """`ftui validate | head -1`: the reader has gone before ftui writes. A pipe whose read end is already
    closed makes every write fail with EPIPE, so the test does not depend on timing. PYTHONUNBUFFERED=1 (set
    by many CI and container images): the write itself fails, inside the command, not at the final flush;
    `ftui list --json` then said "ftui: Broken pipe" and exited 1."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"} | (
        {"PYTHONUNBUFFERED": unbuffered} if unbuffered else {}
    )
    try:
        for args in (["validate"], ["validate", "--json"], ["list"], ["list", "--json"], ["--help"]):
            out = ftui(
                "--registry", str(MINI), "--runs", str(tmp_path / "runs"), *args, stdout=write_end, env=env
            )
            assert (out.returncode, out.stderr) == (0, ""), args
    finally:
        os.close(write_end)


@pytest.mark.parametrize("backend", ["module://matplotlib_inline.backend_inline", "inline", "Qt4Agg"])
def test_export_renders_with_agg_whatever_mplbackend_says(
    backend: str, tmp_path: Path, evaluated: Path
) -> None:
    target = tmp_path / "grid.png"
    out = ftui(
        "--registry", str(MINI), "--runs", str(evaluated), "heatmap", "pair", "--export", str(target),
        env=ENV | {"MPLBACKEND": backend, "DISPLAY": ""},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr == "" and target.read_bytes().startswith(b"\x89PNG")
