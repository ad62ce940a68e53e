"""Family matrices: rows = experiments, columns = evaluated tasks, one layer per seed, read from `eval.json`.

The core takes plain inputs (rows, columns, seeds and a function giving the results of one run) so it can be
tested without a registry; `ftui.analysis.study` adapts a Registry and a runs folder to it. Anything that is
not there yet (an unfinished run, a half-written or unreadable `eval.json`, a missing baseline, a set the run
was not evaluated on) becomes a missing cell (NaN), never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from ftui.analysis.names import SCHEME_NAMES, SET_NAMES, Scheme, SetName  # noqa: F401  (re-exported)
from ftui.analysis.normalise import METRICS, Metric, normalise_improvement, normalise_perfect
from ftui.rundir import EvalResults


@dataclass(frozen=True)
class SetResult:
    """One evaluated set of one run: which metric, and its mean."""

    metric: Metric
    mean: float


RunResults = Mapping[str, SetResult]
"""Set key ("atlantis/distance") -> result, as read from one `eval.json`."""

ResultSource = Callable[[str, int], RunResults | None]
"""(experiment, seed) -> that run's results, or None when it has none (yet)."""

StaleSource = Callable[[str, int], bool]
"""(experiment, seed) -> whether that run is stale (ftui/staleness.py)."""


@dataclass(frozen=True)
class Column:
    """An evaluated task: its name in eval.json and its short code for narrow displays."""

    name: str
    short: str


@dataclass(frozen=True)
class Row:
    """An experiment of the family: its name, the tasks it was trained on, and the seeds it should have."""

    name: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]


def usable_sets(results: EvalResults | None) -> dict[str, SetResult] | None:
    """The sets of one `eval.json` (read by `ftui.rundir.ResultsReader`) the matrices can use, or None when
    the run has no results (no file, an unreadable one, or one without a "sets" object).

    A set entry with a wrong shape is skipped (its cell stays missing); the rest of the file still counts.
    """
    if results is None or results.sets is None:
        return None
    return {
        key: SetResult(metric=cast(Metric, entry.metric), mean=entry.mean)
        for key, entry in results.sets.items()
        if entry.metric in METRICS and entry.mean is not None and math.isfinite(entry.mean)
    }


@dataclass(frozen=True, eq=False)
class FamilyMatrix:
    """Values of one family, per seed, after normalisation (or raw metrics when scheme == "raw").

    `per_seed[s, r, c]` is NaN where seed `seeds[s]` of row r has no value for column c. `done[s, r]` is True
    when that run's `eval.json` was read; `expected[s, r]` when the row has that seed at all; `stale[s, r]`
    when that run's results are stale (made from weights trained again since; ftui/staleness.py).
    """

    family: str
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    seeds: tuple[int, ...]
    scheme: Scheme
    sets: SetName
    per_seed: np.ndarray
    done: np.ndarray
    expected: np.ndarray
    metrics: tuple[Metric | None, ...]
    baseline: str | None = None
    baseline_missing: tuple[int, ...] = ()  # seeds whose baseline run has no results: every cell is missing
    stale: np.ndarray | None = None  # None: not judged (no run is marked)

    @property
    def values(self) -> np.ndarray:
        """The mean over the seeds that have a value (normalised per seed first), NaN where none has."""
        return nan_mean(self.per_seed, axis=0)

    @property
    def trained(self) -> np.ndarray:
        """Boolean (rows, columns): the row was trained on the column's task."""
        return np.array([[col.name in row.tasks for col in self.columns] for row in self.rows], dtype=bool)

    @property
    def seeds_done(self) -> tuple[int, ...]:
        """Per row: how many of its seeds have results."""
        return tuple(int(n) for n in (self.done & self.expected).sum(axis=0))

    @property
    def seeds_expected(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.expected.sum(axis=0))

    @property
    def stale_rows(self) -> tuple[bool, ...]:
        """Per row: some seed's results that its values include are stale (every cell of the row is)."""
        if self.stale is None:
            return (False,) * len(self.rows)
        return tuple(bool(x) for x in (self.stale & self.done).any(axis=0))

    @property
    def missing(self) -> int:
        """The number of cells without a value."""
        return int(np.isnan(self.values).sum())


def nan_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """np.nanmean without the "mean of empty slice" warning: NaN where every entry is NaN."""
    finite = np.isfinite(values)
    counts = finite.sum(axis=axis)
    totals = np.where(finite, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def _cell_value(
    result: SetResult | None,
    task: str,
    sets: SetName,
    scheme: Scheme,
    baseline: RunResults | None,
) -> float:
    if result is None:
        return math.nan
    if scheme == "raw":
        return result.mean
    if baseline is None:
        return math.nan
    if scheme == "perfect":
        base = baseline.get(f"{sets}/{task}")
        if base is None or base.metric != result.metric:
            return math.nan
        return normalise_perfect(result.mean, base.mean, result.metric)
    base_atl, base_std = baseline.get(f"atlantis/{task}"), baseline.get(f"standard/{task}")
    if base_atl is None or base_std is None or {base_atl.metric, base_std.metric} != {result.metric}:
        return math.nan
    return normalise_improvement(result.mean, base_atl.mean, base_std.mean, result.metric)


def build_matrix(
    *,
    family: str,
    rows: Sequence[Row],
    columns: Sequence[Column],
    source: ResultSource,
    baseline: str | None,
    scheme: Scheme = "perfect",
    sets: SetName = "atlantis",
    stale: StaleSource | None = None,
) -> FamilyMatrix:
    """Read every run of the family (and its baseline of the same seed) and normalise per seed.

    `baseline` names the baseline experiment; it may be None only for scheme == "raw". `stale` marks the runs
    whose results are out of date (None: none is).
    """
    if scheme not in SCHEME_NAMES:
        raise ValueError(f"unknown normalisation {scheme!r} (allowed: {', '.join(SCHEME_NAMES)})")
    if sets not in SET_NAMES:
        raise ValueError(f"unknown sets {sets!r} (allowed: {', '.join(SET_NAMES)})")
    if baseline is None and scheme != "raw":
        raise ValueError(f"normalisation {scheme!r} needs a baseline experiment")
    seeds = tuple(dict.fromkeys(seed for row in rows for seed in row.seeds))
    per_seed = np.full((len(seeds), len(rows), len(columns)), np.nan)
    done = np.zeros((len(seeds), len(rows)), dtype=bool)
    expected = np.zeros((len(seeds), len(rows)), dtype=bool)
    out_of_date = np.zeros((len(seeds), len(rows)), dtype=bool)
    metrics: list[Metric | None] = [None] * len(columns)
    baseline_missing: list[int] = []
    for s, seed in enumerate(seeds):
        base = source(baseline, seed) if baseline is not None and scheme != "raw" else None
        if baseline is not None and scheme != "raw" and base is None:
            baseline_missing.append(seed)
        for r, row in enumerate(rows):
            if seed not in row.seeds:
                continue
            expected[s, r] = True
            results = source(row.name, seed)
            if results is None:
                continue
            done[s, r] = True
            out_of_date[s, r] = stale is not None and stale(row.name, seed)
            for c, column in enumerate(columns):
                result = results.get(f"{sets}/{column.name}")
                if result is not None and metrics[c] is None:
                    metrics[c] = result.metric
                per_seed[s, r, c] = _cell_value(result, column.name, sets, scheme, base)
    return FamilyMatrix(
        family=family,
        rows=tuple(rows),
        columns=tuple(columns),
        seeds=seeds,
        scheme=scheme,
        sets=sets,
        per_seed=per_seed,
        done=done,
        expected=expected,
        metrics=tuple(metrics),
        baseline=baseline,
        baseline_missing=tuple(baseline_missing),
        stale=out_of_date if stale is not None else None,
    )
