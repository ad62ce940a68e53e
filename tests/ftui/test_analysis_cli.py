"""`ftui heatmap` and `ftui predict` end to end on generated fixtures (mini study and the shipped study)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftui.cli import main
from tests.conftest import REPO_ROOT
from tests.data.make_eval_fixtures import make_fixtures

MINI = REPO_ROOT / "tests" / "data" / "mini_study.toml"
SHIPPED = REPO_ROOT / "experiments.toml"


@pytest.fixture(scope="module")
def mini_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    make_fixtures(MINI, runs)
    return runs


def ftui(registry: Path, runs: Path, *args: str) -> int:
    return main(["--registry", str(registry), "--runs", str(runs), *args])


def test_heatmap_prints_the_grid(mini_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ftui(MINI, mini_runs, "heatmap", "pair", "--predict", "max") == 0
    out = capsys.readouterr().out
    assert "pair · perfect normalisation · atlantis sets · seeds 7" in out
    assert "predicted: max" in out and "error = predicted - actual" in out
    assert "0 cells missing" in out
    assert out.count(" T") >= 18  # 6 trained cells in each of 3 panels


def test_heatmap_json_and_export(mini_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        ftui(MINI, mini_runs, "heatmap", "pair", "--json", "--norm", "improvement", "--sets", "standard") == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert (data["normalisation"], data["sets"], data["family"]) == ("improvement", "standard", "pair")
    target = tmp_path / "pair.csv"
    assert ftui(MINI, mini_runs, "heatmap", "pair", "--export", str(target)) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert target.read_text().startswith(
        "panel,experiment,tasks,seeds_done,seeds_expected,distance,angle,compass"
    )


def test_predict_json_ranks_every_model(mini_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ftui(MINI, mini_runs, "predict", "pair", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    maes = [model["all"]["mae"] for model in data["models"]]
    assert len(maes) == 7 and maes == sorted(maes)
    assert data["predict_from"] == "single"
    assert [t["task"] for t in data["interference"]["tasks"]] == ["distance", "angle", "compass"]


def test_bad_names_exit_2_with_the_allowed_names(mini_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ftui(MINI, mini_runs, "heatmap", "pairs") == 2
    assert "allowed: single, pair" in capsys.readouterr().err
    assert ftui(MINI, mini_runs, "predict", "single") == 2
    assert "families with predictions: pair" in capsys.readouterr().err
    assert ftui(MINI, mini_runs, "heatmap", "pair", "--export", "x.gif") == 2
    assert "allowed: .png" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        ftui(MINI, mini_runs, "heatmap", "pair", "--predict", "best")
    assert exited.value.code == 2
    assert "invalid choice: 'best'" in (err := capsys.readouterr().err) and "'max_decay', 'linear'" in err
    assert ftui(MINI / "missing.toml", mini_runs, "heatmap", "pair") == 2


@pytest.mark.slow
def test_shipped_study_ft2_from_ft1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's "done when": ft1 and ft2 fixtures; predict ranks the models; the three-panel PNG."""
    runs = tmp_path / "runs"
    make_fixtures(SHIPPED, runs)
    assert ftui(SHIPPED, runs, "predict", "ft2", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["predict_from"] == "ft1" and data["missing_cells"] == {"target": 0, "source": 0}
    maes = [model["all"]["mae"] for model in data["models"]]
    assert maes == sorted(maes)
    errors = {t["task"]: t["mean_error"] for t in data["interference"]["tasks"]}
    # The fixture makes distance divergent, as the paper found: the largest positive mean error by far.
    assert max(errors, key=lambda task: errors[task]) == "distance"
    assert errors["distance"] > 0.2 > max(v for task, v in errors.items() if task != "distance")
    png = tmp_path / "ft2.png"
    assert ftui(SHIPPED, runs, "heatmap", "ft2", "--predict", "max", "--export", str(png)) == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
