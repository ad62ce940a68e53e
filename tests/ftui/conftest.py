"""Fixtures shared by the app tests: runs folders of the mini study (tests/ftui/app_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.make_eval_fixtures import make_fixtures
from tests.ftui.app_fixtures import age_files, build_states, make_study


@pytest.fixture
def states_study(tmp_path: Path) -> Path:
    """The mini study with one run in every queue state (`build_states`); returns its experiments.toml."""
    registry = make_study(tmp_path)
    build_states(registry)
    return registry


@pytest.fixture
def aged_states_study(states_study: Path) -> Path:
    """`states_study` with its run files dated a minute ago: not racy for the persisted cache
    (ftui/run_cache.py), so what a listing reads of them is remembered."""
    age_files(states_study.parent / "runs")
    return states_study


@pytest.fixture
def results_study(tmp_path: Path) -> Path:
    """The mini study with eval.json results for every run; pair-3 is not evaluated yet, so its row must show
    dots, never an error."""
    registry = make_study(tmp_path)
    make_fixtures(registry, tmp_path / "runs", skip=[("pair-3", 7)])
    return registry
