"""`ftui validate` and `ftui prepare` (the registry commands) end to end."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ftui.cli import main
from ftui.commands import registry_cmds
from ftui.registry import load_registry
from tests.conftest import REPO_ROOT

SHIPPED = REPO_ROOT / "experiments.toml"
MINI = REPO_ROOT / "tests" / "data" / "mini_study.toml"
MANY = REPO_ROOT / "tests" / "data" / "registry" / "many_problems.toml"


def run_registry_cmd(argv: list[str]) -> int:
    """Run one of this module's commands through a parser holding only them (plus the global options), so
    these tests do not depend on other command modules (the queue commands replace `list`)."""
    parser = argparse.ArgumentParser(prog="ftui")
    parser.add_argument("--registry", type=Path, default=Path("experiments.toml"))
    parser.add_argument("--runs", type=Path, default=None)
    parser.add_argument("--profile", default=None)
    registry_cmds.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_validate_prints_the_whole_shipped_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--registry", str(SHIPPED), "validate"]) == 0
    out = capsys.readouterr().out
    assert "71 experiments, 71 runs (seed 42)" in out
    for name in ("pt1", "ft1-7", "ft2-21", "ft3-7", "ftwb1-1", "ftwb2-21", "ftwb3-7"):
        assert f" {name} " in out
    assert "D T A Co I P Cr" in out  # pt1's tasks as short codes


def test_validate_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_registry_cmd(["--registry", str(MINI), "validate", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["valid"] is True and payload["default_profile"] == "smoke"
    assert [e["name"] for e in payload["experiments"]] == [
        "base", "single-1", "single-2", "single-3", "pair-1", "pair-2", "pair-3",
    ]  # fmt: skip
    assert payload["experiments"][4] == {
        "name": "pair-1", "family": "pair", "kind": "finetune", "tasks": ["distance", "angle"],
        "codes": ["D", "A"], "parent": "base", "warmup": False, "seeds": [7], "runs": ["pair-1"],
    }  # fmt: skip
    assert payload["heatmaps"][1] == {
        "name": "pair",
        "family": "pair",
        "predict_from": "single",
        "baseline": "base",
    }
    assert payload["summary"] == "7 experiments, 7 runs (seed 7)"


def test_validate_reports_every_problem_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_registry_cmd(["--registry", str(MANY), "validate"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith(f"error: {MANY}:") for line in lines)
    assert "did you mean 'normalisation'?" in captured.err and "Traceback" not in captured.err
    assert captured.out == ""

    assert run_registry_cmd(["--registry", str(MANY), "validate", "--json"]) == 2
    payload = json.loads(capsys.readouterr().out)
    assert payload["valid"] is False and len(payload["problems"]) == 5
    assert payload["problems"][0]["field"] == "normalisaton" and payload["problems"][0]["line"] == 10


def test_validate_rejects_an_unknown_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_registry_cmd(["--registry", str(MINI), "--profile", "paper", "validate"]) == 2
    assert "unknown profile 'paper' (allowed: smoke)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [["list"], ["list", "--json"], ["heatmap", "pair"], ["predict", "pair"], ["clean", "--dry-run"],
     ["cancel", "base"], ["logs", "base"], ["report"]],
    ids=lambda c: " ".join(c),
)  # fmt: skip
def test_every_command_rejects_an_unknown_profile(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --profile typo was taken silently by list, heatmap, clean and report (report even named it in its
    README): every command now says which profiles exist, exit 2, nothing written."""
    argv = ["--registry", str(MINI), "--runs", str(tmp_path / "runs"), "--profile", "smok", *command]
    if command == ["report"]:
        argv += ["--out", str(tmp_path / "report")]
    assert main(argv) == 2
    assert "unknown profile 'smok' (allowed: smoke; did you mean 'smoke'?)" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_prepare_writes_configs_and_prints_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    argv = ["--registry", str(MINI), "--runs", str(runs), "prepare", "base", "pair-*"]
    assert run_registry_cmd(argv) == 0
    captured = capsys.readouterr()
    folders = captured.out.split()
    assert folders == [str(runs / name) for name in ("base", "pair-1", "pair-2", "pair-3")]
    assert "4 config(s) written, 0 unchanged (profile 'smoke'" in captured.err
    config = tomllib.loads((runs / "pair-2" / "config.toml").read_text())
    assert config == load_registry(MINI).resolve_config(load_registry(MINI).run("pair-2"))
    assert sorted(p.name for p in runs.iterdir()) == ["base", "pair-1", "pair-2", "pair-3"]

    assert run_registry_cmd(argv) == 0
    assert "0 config(s) written, 4 unchanged" in capsys.readouterr().err


def test_prepare_writes_nothing_when_one_run_clashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    assert run_registry_cmd(["--registry", str(MINI), "--runs", str(runs), "prepare", "single-1"]) == 0
    started = runs / "single-1"
    (started / "checkpoints").mkdir()
    changed = tmp_path / "study.toml"
    changed.write_text(MINI.read_text().replace("lr = 3e-4", "lr = 5e-4"))
    capsys.readouterr()

    argv = ["--registry", str(changed), "--runs", str(runs), "prepare", "single"]
    assert run_registry_cmd(argv) == 2
    err = capsys.readouterr().err
    assert f"{started / 'config.toml'}: run 'single-1': has already started with a different config" in err
    assert sorted(p.name for p in runs.iterdir()) == ["single-1"]  # single-2 and single-3 not written either
    assert tomllib.loads((started / "config.toml").read_text())["train"]["lr"] == 3e-4

    assert run_registry_cmd([*argv[:-1], "--force", "single"]) == 0
    assert tomllib.loads((started / "config.toml").read_text())["train"]["lr"] == 5e-4
    assert sorted(p.name for p in runs.iterdir()) == ["single-1", "single-2", "single-3"]


def test_prepare_on_an_invalid_registry_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    assert run_registry_cmd(["--registry", str(MANY), "--runs", str(runs), "prepare", "*"]) == 2
    assert not runs.exists()
    assert run_registry_cmd(["--registry", str(MINI), "--runs", str(runs), "prepare", "singel-1"]) == 2
    assert (
        "pattern 'singel-1' matches no experiment, run or family; did you mean 'single-1'"
        in capsys.readouterr().err
    )
    assert not runs.exists()


def test_prepared_paper_config_uses_the_profile_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--registry", str(SHIPPED), "--runs", str(tmp_path), "--profile", "paper", "prepare", "ft3-1"]
    assert run_registry_cmd(argv) == 0
    config = tomllib.loads((tmp_path / "ft3-1" / "config.toml").read_text())
    assert config["train"]["epochs"] == 20 and config["model"]["n_layer"] == 6
    assert "profile 'paper'" in capsys.readouterr().err


def test_registry_rows_for_selected_runs() -> None:
    registry = load_registry(SHIPPED)
    rows = registry_cmds.registry_rows(registry, registry.runs(["ftwb3-*"]))
    assert [r["name"] for r in rows] == [f"ftwb3-{i}" for i in range(1, 8)]
    assert rows[0]["codes"] == ["D", "T", "A"] and rows[0]["warmup"] is True and rows[0]["parent"] == "pt1"


@pytest.mark.slow
def test_real_command_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "ftui", "--registry", str(tmp_path / "none.toml"), "validate"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert missing.returncode == 2 and "none.toml: file not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "ftui", "validate"], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert ok.returncode == 0 and "71 experiments, 71 runs (seed 42)" in ok.stdout
