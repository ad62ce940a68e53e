"""Readable at 80 columns: `ftui list` one line per run with a summary, `--wide`, `--json`'s summary, and the
app's header (Pilot at 80x24). The runs are the mini study in every queue state (`build_states`) plus one
done run with a long name."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

from ftui.app import make_app
from ftui.cli import main
from ftui.list_lines import elide_middle
from ftui.queue.store import Store
from ftui.registry import load_registry
from ftui.status import RunStatus
from ftui.widgets.home_header import HomeHeader
from tests.ftui.app_fixtures import BASE_METRICS, build_states, make_study, settle, write_eval, write_final
from tests.ftui.queue_helpers import run_ftui

LONG = "a-fine-tune-with-a-name-far-too-long-for-one-column-of-the-list-7"
KEYS = ["base", LONG, "single-1", "single-2", "single-3", "pair-1", "pair-2", "pair-3"]  # experiments first
COUNTS = "8 runs: 2 done, 1 running, 1 queued, 1 waiting, 1 failed, 1 blocked, 1 cancelled"


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """The mini study in every state (`build_states`), and LONG trained and evaluated (done)."""
    # A folder name long enough that "runs in <path>" is elided at 80 columns whatever pytest's tmp path is
    # (CI as root got a 79-column title and no "…").
    registry = make_study(tmp_path / "a-study-folder-whose-path-never-fits-in-80-columns")
    registry.write_text(
        registry.read_text()
        + f'\n[[experiment]]\nname = "{LONG}"\nkind = "finetune"\nparent = "base"\ntasks = ["D", "A"]\n'
    )
    build_states(registry)
    write_final(registry.parent / "runs" / LONG)
    write_eval(registry.parent / "runs" / LONG, BASE_METRICS, name=LONG)
    return registry


def ftui_list(registry: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["--registry", str(registry), "list", *args]) == 0
    return capsys.readouterr().out


def test_at_80_columns_each_run_is_one_line_and_no_line_is_longer(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    lines = ftui_list(study, capsys).splitlines()
    assert max(map(cell_len, lines)) <= 80, "\n".join(lines)
    assert lines[0].startswith("runs in ") and "…" in lines[0]  # the tmp folder, elided in the middle
    assert lines[1].split() == ["run", "state", "progress", "loss", "result"]
    rows = dict(zip(KEYS, lines[2 : 2 + len(KEYS)], strict=True))
    for key, line in rows.items():
        assert line.split()[0] == key or key == LONG, line
    name = rows[LONG].split()[0]  # the long name: its start and end around "…", never wrapped
    assert "…" in name and LONG.startswith(name.split("…")[0]) and LONG.endswith(name.split("…")[1])
    assert len(name) >= 20 and rows[LONG].split()[1:3] == ["✔", "done"]
    assert rows["base"].split()[1:] == ["✔", "done", "1.6000", "D", "400", "A", "60", "Co", "30%"]
    assert rows["single-1"].split()[1:5] == ["▶", "running", "50%", "0s"]  # 4/8 steps, ETA counted down
    assert rows["single-2"].split()[1:] == ["◌", "queued", "train"]
    assert rows["pair-2"].split()[1:3] == ["■", "blocked"] and rows["pair-2"].endswith("…")  # reason cut
    summary = " ".join(line.strip() for line in lines[2 + len(KEYS) :])  # wrapped at 80, indented
    assert summary.startswith(COUNTS + "; queue empty in: unknown (2 jobs of a kind not measured yet)")
    assert "no worker, 2 jobs queued, 1 running unwatched" in summary


def test_a_pipe_gets_every_name_and_result_in_full(study: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = run_ftui(study, "list", env=env | {"PYTHONPATH": os.pathsep.join(sys.path)}, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[2 + KEYS.index(LONG)].startswith(LONG + "  ")
    assert lines[2 + KEYS.index("pair-2")].endswith("blocked by pair-3 train (cancelled)")
    assert lines[2 + len(KEYS)].startswith(COUNTS + "; queue empty in: unknown")
    assert len(lines) == 2 + len(KEYS) + 2  # counts and estimate on one line, then the worker's


def test_with_patterns_the_summary_speaks_of_the_listed_runs(
    study: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ftui_list(study, capsys, "pair-*").splitlines()
    assert [line.split()[0] for line in lines[2:5]] == ["pair-1", "pair-2", "pair-3"]
    counts = "3 runs: 1 waiting, 1 blocked, 1 cancelled"
    assert lines[5] == f"{counts}; their jobs end in: unknown (1 job of a kind not measured yet)"
    lines = ftui_list(study, capsys, "base").splitlines()
    assert lines[3] == "1 run: 1 done; no job pending"


def test_elide_middle_keeps_both_ends_in_cells() -> None:
    assert elide_middle("ft2-3/seed-42", 13) == "ft2-3/seed-42"
    assert elide_middle("ft2-3/seed-42", 9) == "ft2-…d-42"
    assert elide_middle("実験-ft2-3", 7) == "実…t2-3"  # wide characters count two cells
    assert cell_len(elide_middle("実験実験実験実験", 6)) <= 6


def test_wide_prints_every_column_in_full(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    out = ftui_list(study, capsys, "--wide")
    header = next(line for line in out.splitlines() if "progress" in line)
    assert [w for w in header.split() if w.isalpha()] == [
        "run",
        "tasks",
        "state",
        "progress",
        "ETA",
        "loss",
        "result",
    ]
    assert LONG in out and "blocked by pair-3 train (cancelled)" in out and "running (train)" in out
    assert COUNTS in out  # the same summary


def test_json_adds_a_summary_beside_worker_and_runs(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(ftui_list(study, capsys, "--json"))
    assert list(data) == ["worker", "summary", "runs"]
    assert [r["key"] for r in data["runs"]] == KEYS
    assert set(data["runs"][0]) == set(RunStatus.__dataclass_fields__) - {"result_all"}  # --wide's text only
    summary = data["summary"]
    assert summary["runs"] == 8
    assert summary["states"] == {
        "done": 2, "running": 1, "queued": 1, "waiting": 1, "failed": 1, "blocked": 1, "cancelled": 1,
    }  # fmt: skip
    # single-1 running (ETA 0: its fixture's last step is long past), single-2 queued and pair-1 waiting: no
    # fine-tune ever finished, so those two have no basis; 1 slot (one job running).
    assert summary["pending_jobs"] == 3 and summary["unestimated_jobs"] == 2 and summary["slots"] == 1
    assert summary["queue_empty_in_s"] == 0.0 and summary["measured_jobs"] == 2  # base's train and eval


# ---- the app's header ----------------------------------------------------------------------------------
def header_lines(app: object) -> list[str]:
    header = app.screen.query_one(HomeHeader)  # type: ignore[attr-defined]
    return str(header.render()).split("\n")


async def test_the_header_names_registry_profile_runs_folder_worker_and_counts_at_80x24(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(study.parent)  # paths are shown relative to the current folder
    Store(study.parent / "runs").set_paused(True)
    app = make_app(study, start_worker=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        where, counts = header_lines(app)
        assert where == "experiments.toml · profile smoke · runs/ · worker: paused"
        # 8 states do not fit in 78 columns as words: the symbols of the table's state column instead
        assert cell_len(COUNTS) > 78 and counts == "8 runs: ✔ 2 ▶ 1 ◌ 1 … 1 ✖ 1 ■ 1 ⊘ 1"
        header = app.screen.query_one(HomeHeader)
        assert header.region.y == 0 and header.region.height == 2 and header.region.width == 80
        Store(study.parent / "runs").set_paused(False)
        app.screen.refresh_runs()  # what the 1 s timer does
        await settle(pilot)
        assert header_lines(app)[0].endswith("worker: none")


async def test_the_header_elides_long_paths_and_words_when_they_fit(tmp_path: Path) -> None:
    deep = tmp_path / ("a-rather-deep-folder-" * 4) / "study"
    registry = make_study(deep)
    base = registry.parent / "runs" / "base"
    write_final(base)
    write_eval(base, BASE_METRICS, name="base")
    app = make_app(registry, start_worker=False, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        where, counts = header_lines(app)
        assert cell_len(where) <= 78 and where.count("…") == 2, where
        assert " · profile smoke · " in where and where.endswith("runs/ · read-only")
        assert counts == "7 runs: 1 done, 6 new"  # the words fit
        assert len(load_registry(registry).all_runs()) == 7


def test_wide_and_json_give_every_trained_task_the_narrow_list_the_first_four(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pt1 of the shipped study is trained on seven tasks: `--wide` promised the whole result but showed four
    and "…", and `--json` had only that text. Now --wide shows all seven and --json every set's mean."""
    from tests.conftest import REPO_ROOT

    seven = {
        "distance": ("abs_error", 45.2, 40.0),
        "trianglearea": ("abs_error", 68434.0, 60000.0),
        "angle": ("abs_error", 37.4, 30.0),
        "compass": ("accuracy", 0.93, 0.9),
        "inside": ("accuracy", 0.71, 0.7),
        "perimeter": ("abs_error", 612.0, 500.0),
        "crossing": ("accuracy", 0.66, 0.6),
    }
    runs = tmp_path / "runs"
    write_final(runs / "pt1")
    write_eval(runs / "pt1", seven, name="pt1")
    argv = ["--registry", str(REPO_ROOT / "experiments.toml"), "--runs", str(runs), "list", "pt1"]
    monkeypatch.setenv("COLUMNS", "250")
    assert main(argv) == 0
    assert "D 45.2 T 68434 A 37.4 Co 93% …" in capsys.readouterr().out
    assert main([*argv, "--wide"]) == 0
    assert "D 45.2 T 68434 A 37.4 Co 93% I 71% P 612 Cr 66%" in capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["runs"]
    assert row["result"] == "D 45.2 T 68434 A 37.4 Co 93% …" and "result_all" not in row
    assert row["metrics"] == {f"{s}/{t}": v[1 if s == "atlantis" else 2] for t, v in seven.items() for s in
                              ("atlantis", "standard")}  # fmt: skip


@pytest.mark.parametrize("columns", ["80", "40"])
def test_rich_prints_the_very_characters_of_the_plain_output_with_the_states_coloured(
    study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    """Piped, `ftui list` writes its lines without Rich's console (ftui/list_lines.py `styled_output`); told
    to colour (FORCE_COLOR, as a terminal would be), Rich prints the same characters, each state in its
    style. 40 columns: lines cut inside the state column keep their style up to the cut."""
    import re

    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    plain = ftui_list(study, capsys)
    assert "\x1b[" not in plain
    monkeypatch.setenv("FORCE_COLOR", "1")
    coloured = ftui_list(study, capsys)
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
    assert coloured.count("\x1b[") >= len(KEYS)  # every run's state, at least
    failed = next(line for line in coloured.splitlines() if line.startswith("single-3"))
    assert re.search(r"\x1b\[[0-9;]*m✖ failed", failed)


def test_a_piped_listing_does_not_import_richs_console(study: Path) -> None:
    """Some 30 ms of every piped `ftui list` (issue 18): Rich's console is imported only to colour."""
    import subprocess

    probe = (
        "import sys\nfrom ftui.cli import main\n"
        f"main(['--registry', {str(study)!r}, 'list', 'single-2'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('rich.')), file=sys.stderr)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True, timeout=60
    )
    assert "single-2" in done.stdout
    assert "rich.console" not in done.stderr and "rich.text" not in done.stderr, done.stderr
