"""Family matrices read from generated eval.json fixtures: known values come back, missing runs counted."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from ftui.analysis.matrix import SetResult, usable_sets
from ftui.analysis.normalise import normalise_improvement
from ftui.analysis.study import AnalysisError, build_view, resolve_heatmap
from ftui.registry import load_registry
from ftui.rundir import ResultsReader
from tests.conftest import REPO_ROOT
from tests.data.make_eval_fixtures import known_standard, known_value, make_fixtures

MINI = REPO_ROOT / "tests" / "data" / "mini_study.toml"
TASKS = ["distance", "angle", "compass"]
PAIRS = [("distance", "angle"), ("angle", "compass"), ("compass", "distance")]


def two_seed_registry(tmp_path: Path) -> Path:
    """The mini study with seeds 7 and 8 (run folders pair-1/seed-7 ...)."""
    text = MINI.read_text(encoding="utf-8")
    assert "seeds = [7]" in text
    path = tmp_path / "study.toml"
    path.write_text(text.replace("seeds = [7]", "seeds = [7, 8]"), encoding="utf-8")
    return path


def known(tasks: tuple[str, ...], seed_index: int) -> list[float]:
    return [known_value(tasks, j, seed_index, TASKS) for j in range(len(TASKS))]


def test_fixture_values_come_back_exactly(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_fixtures(MINI, runs)
    registry = load_registry(MINI)
    view = build_view(registry, runs, "pair")
    expected = np.array([known(pair, 0) for pair in PAIRS])
    np.testing.assert_allclose(view.matrix.values, expected, atol=1e-12)
    assert view.matrix.missing == 0
    assert view.matrix.seeds_done == (1, 1, 1)
    assert view.matrix.trained.tolist() == [[True, True, False], [False, True, True], [True, False, True]]
    standard = build_view(registry, runs, "pair", sets="standard")
    np.testing.assert_allclose(standard.matrix.values, np.vectorize(known_standard)(expected), atol=1e-12)


def read_eval(run_dir: Path) -> Mapping[str, SetResult] | None:
    """A run's eval.json as the matrices use it (a fresh reader: no cache between the rewrites below)."""
    return usable_sets(ResultsReader().results(run_dir))


def test_raw_and_improvement_schemes_use_the_same_seed_baseline(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_fixtures(MINI, runs)
    registry = load_registry(MINI)
    base = read_eval(runs / "base")
    run = read_eval(runs / "pair-2")
    assert base is not None and run is not None
    raw = build_view(registry, runs, "pair", raw=True)
    assert raw.matrix.values[1, 0] == run["atlantis/distance"].mean
    improvement = build_view(registry, runs, "pair", scheme="improvement")
    by_hand = normalise_improvement(
        run["atlantis/compass"].mean, base["atlantis/compass"].mean, base["standard/compass"].mean, "accuracy"
    )
    assert improvement.matrix.values[1, 2] == pytest.approx(by_hand)
    assert improvement.matrix.scheme == "improvement"


def test_missing_runs_and_seeds_are_missing_cells_with_counts(tmp_path: Path) -> None:
    registry_path = two_seed_registry(tmp_path)
    runs = tmp_path / "runs"
    make_fixtures(
        registry_path,
        runs,
        skip=[("pair-1", 7), ("pair-1", 8), ("pair-2", 8), ("single-2", 8)],
        corrupt=[("pair-3", 7)],  # a torn eval.json counts as not done
    )
    registry = load_registry(registry_path)
    view = build_view(registry, runs, "pair")
    matrix = view.matrix
    assert matrix.seeds == (7, 8)
    assert matrix.seeds_done == (0, 1, 1)
    assert matrix.seeds_expected == (2, 2, 2)
    assert matrix.missing == 3  # the whole pair-1 row
    assert all(math.isnan(v) for v in matrix.values[0])
    np.testing.assert_allclose(matrix.values[1], known(PAIRS[1], 0), atol=1e-12)  # seed 7 only
    np.testing.assert_allclose(matrix.values[2], known(PAIRS[2], 1), atol=1e-12)  # seed 8 only
    assert view.missing_line() == "3 cells missing"
    # Predictions still work: seed 8 lacks single-2 (angle), so rows with angle are predicted from seed 7.
    predicted = build_view(registry, runs, "pair", model="max")
    assert predicted.prediction is not None
    assert not np.isnan(predicted.prediction.predicted).any()  # seed 7 has every teacher


def test_two_seeds_are_averaged_after_normalising_each(tmp_path: Path) -> None:
    registry_path = two_seed_registry(tmp_path)
    runs = tmp_path / "runs"
    make_fixtures(registry_path, runs)
    view = build_view(load_registry(registry_path), runs, "single")
    expected = [[(a + b) / 2 for a, b in zip(known((t,), 0), known((t,), 1), strict=True)] for t in TASKS]
    np.testing.assert_allclose(view.matrix.values, expected, atol=1e-12)
    assert view.matrix.seeds_done == (2, 2, 2)
    assert "seeds 7, 8" in view.title()


def test_missing_baseline_and_bad_entries_never_raise(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_fixtures(MINI, runs, skip=[("base", 7)])
    registry = load_registry(MINI)
    view = build_view(registry, runs, "pair", model="mean")
    assert view.matrix.missing == 9
    assert view.matrix.seeds_done == (1, 1, 1)  # the runs are done; only their baseline is not
    assert view.matrix.baseline_missing == (7,)
    assert "baseline base not evaluated, seed 7: ftui eval base" in view.missing_line()
    assert build_view(registry, runs, "pair", raw=True).matrix.missing == 0
    # One malformed set entry: only that cell goes missing.
    make_fixtures(MINI, runs)
    path = runs / "pair-1" / "eval.json"
    data = json.loads(path.read_text())
    data["sets"]["atlantis/angle"]["mean"] = "n/a"
    path.write_text(json.dumps(data))
    matrix = build_view(registry, runs, "pair").matrix
    assert matrix.missing == 1 and math.isnan(matrix.values[0, 1])
    for garbage in ("", "[]", '{"sets": 3}', "{"):
        path.write_text(garbage)
        assert read_eval(path.parent) is None


def test_unknown_names_list_what_is_allowed(tmp_path: Path) -> None:
    registry = load_registry(MINI)
    with pytest.raises(
        AnalysisError, match=r"unknown heatmap or family 'pairs'.*allowed: single, pair.*'pair'"
    ):
        resolve_heatmap(registry, "pairs")
    with pytest.raises(AnalysisError, match="has no predict_from"):
        build_view(registry, tmp_path, "single", model="max")
    with pytest.raises(AnalysisError, match="allowed: perfect, improvement"):
        build_view(registry, tmp_path, "pair", scheme="log")
    with pytest.raises(AnalysisError, match="allowed: max, mean"):
        build_view(registry, tmp_path, "pair", model="best")
