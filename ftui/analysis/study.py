"""Adapters from a Registry and a runs folder to the analysis core (matrices, predictions, scores, views).

Typed against small Protocols of the registry's public API so the analysis does not depend on how the registry
is implemented. A run's results are the eval.json of `runs_dir / run.rel_dir`; a run's baseline is the
baseline experiment's run of the same seed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from ftui.analysis.matrix import (
    SCHEME_NAMES,
    SET_NAMES,
    Column,
    FamilyMatrix,
    Row,
    RunResults,
    Scheme,
    SetName,
    build_matrix,
    usable_sets,
)
from ftui.analysis.predict import (
    MODELS,
    ModelScore,
    PredictionError,
    TaskInterference,
    interference,
    predict,
)
from ftui.analysis.predict import score_models as score_all
from ftui.analysis.view import HeatmapView
from ftui.rundir import EvalResults, ResultsReader, StrPath
from ftui.staleness import ReadProgress, StaleRuns


class AnalysisError(ValueError):
    """A name or option the study does not have; the message lists what is allowed."""


class _Task(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def short(self) -> str: ...


class _Study(Protocol):
    @property
    def tasks(self) -> Sequence[_Task]: ...
    @property
    def normalisation(self) -> str: ...


class _Experiment(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def tasks(self) -> tuple[str, ...]: ...
    @property
    def seeds(self) -> tuple[int, ...]: ...


class _Run(Protocol):
    @property
    def experiment(self) -> _Experiment: ...
    @property
    def seed(self) -> int: ...
    @property
    def rel_dir(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def parent_key(self) -> str | None: ...


class _HeatmapDef(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def predict_from(self) -> str | None: ...
    @property
    def baseline(self) -> str: ...


class RegistryLike(Protocol):
    @property
    def study(self) -> _Study: ...
    @property
    def experiments(self) -> Sequence[_Experiment]: ...
    @property
    def families(self) -> Mapping[str, tuple[str, ...]]: ...
    @property
    def heatmaps(self) -> Sequence[_HeatmapDef]: ...
    def runs(self, patterns: Sequence[str] = ()) -> Sequence[_Run]: ...


@dataclass(frozen=True)
class ResolvedHeatmap:
    """What one heatmap shows: the family of its rows, where predictions come from, and the baseline."""

    name: str
    family: str
    predict_from: str | None
    baseline: str


def _not_found(kind: str, name: str, allowed: Sequence[str]) -> AnalysisError:
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return AnalysisError(f"unknown {kind} {name!r} (allowed: {', '.join(allowed) or 'none'}{hint})")


def heatmap_names(registry: RegistryLike) -> list[str]:
    """Names `ftui heatmap` accepts: every [[heatmap]] name, then every family not already one."""
    names = [h.name for h in registry.heatmaps]
    return names + [family for family in registry.families if family not in names]


def resolve_heatmap(registry: RegistryLike, name_or_family: str) -> ResolvedHeatmap:
    """A [[heatmap]] by name, else the heatmap of that family, else the bare family (no predictions)."""
    for heatmap in registry.heatmaps:
        if heatmap.name == name_or_family:
            return ResolvedHeatmap(heatmap.name, heatmap.family, heatmap.predict_from, heatmap.baseline)
    for heatmap in registry.heatmaps:
        if heatmap.family == name_or_family:
            return ResolvedHeatmap(heatmap.name, heatmap.family, heatmap.predict_from, heatmap.baseline)
    if name_or_family in registry.families and registry.heatmaps:
        # A family without its own [[heatmap]] is still shown against the study's (first) baseline.
        return ResolvedHeatmap(name_or_family, name_or_family, None, registry.heatmaps[0].baseline)
    raise _not_found("heatmap or family", name_or_family, heatmap_names(registry))


def check_choice(name: str, allowed: Sequence[str], what: str) -> str:
    if name not in allowed:
        raise _not_found(what, name, allowed)
    return name


ReadResults = Callable[[StrPath], EvalResults | None]
"""A run folder -> its eval.json (`ftui.rundir.ResultsReader.results`: the app passes its long-lived one, so
an unchanged file costs a stat)."""


class RunsReader:
    """Each run's usable results, read at most once: (experiment, seed) -> results, None when it has none.
    `is_stale` says whether a run's results are stale (ftui/staleness.py; `progress` reads events.jsonl)."""

    def __init__(
        self,
        registry: RegistryLike,
        runs_dir: Path,
        results: ReadResults | None = None,
        progress: ReadProgress | None = None,
    ) -> None:
        runs = registry.runs()
        self._dirs = {(run.experiment.name, run.seed): runs_dir / run.rel_dir for run in runs}
        self._keys = {(run.experiment.name, run.seed): run.key for run in runs}
        self._read = results or ResultsReader().results
        self._cache: dict[tuple[str, int], RunResults | None] = {}
        self._stale = StaleRuns(runs_dir, runs, progress, self._read)

    def is_stale(self, experiment: str, seed: int) -> bool:
        key = self._keys.get((experiment, seed))
        return key is not None and self._stale.check(key) is not None

    def __call__(self, experiment: str, seed: int) -> RunResults | None:
        key = (experiment, seed)
        if key not in self._cache:
            folder = self._dirs.get(key)
            self._cache[key] = usable_sets(self._read(folder)) if folder is not None else None
        return self._cache[key]


def family_matrix(
    registry: RegistryLike,
    reader: RunsReader,
    family: str,
    *,
    baseline: str,
    scheme: Scheme,
    sets: SetName,
) -> FamilyMatrix:
    if family not in registry.families:
        raise _not_found("family", family, list(registry.families))
    experiments = {experiment.name: experiment for experiment in registry.experiments}
    rows = [
        Row(name=name, tasks=tuple(experiments[name].tasks), seeds=tuple(experiments[name].seeds))
        for name in registry.families[family]
    ]
    columns = [Column(name=task.name, short=task.short) for task in registry.study.tasks]
    return build_matrix(
        family=family, rows=rows, columns=columns, source=reader, baseline=baseline, scheme=scheme, sets=sets,
        stale=reader.is_stale,
    )  # fmt: skip


def _scheme(registry: RegistryLike, scheme: str | None, raw: bool) -> Scheme:
    if raw:
        return "raw"
    chosen = scheme if scheme is not None else registry.study.normalisation
    return cast(Scheme, check_choice(chosen, [s for s in SCHEME_NAMES if s != "raw"], "normalisation"))


def _sets(sets: str) -> SetName:
    return cast(SetName, check_choice(sets, SET_NAMES, "sets"))


def _no_predict_from(registry: RegistryLike, choice: ResolvedHeatmap) -> AnalysisError:
    predictable = [h.name for h in registry.heatmaps if h.predict_from]
    return AnalysisError(
        f"heatmap {choice.name!r} has no predict_from family "
        f"(heatmaps with predictions: {', '.join(predictable) or 'none'})"
    )


def _matrices(
    registry: RegistryLike,
    runs_dir: Path,
    choice: ResolvedHeatmap,
    scheme: Scheme,
    sets: SetName,
    *,
    with_source: bool,
    results: ReadResults | None = None,
    progress: ReadProgress | None = None,
) -> tuple[FamilyMatrix, FamilyMatrix | None]:
    """The heatmap's own family matrix and, `with_source`, the matrix its predictions come from."""
    reader = RunsReader(registry, runs_dir, results, progress)
    target = family_matrix(
        registry, reader, choice.family, baseline=choice.baseline, scheme=scheme, sets=sets
    )
    if not with_source or choice.predict_from is None:
        return target, None
    source = family_matrix(
        registry, reader, choice.predict_from, baseline=choice.baseline, scheme=scheme, sets=sets
    )
    return target, source


def build_view(
    registry: RegistryLike,
    runs_dir: Path,
    name_or_family: str,
    *,
    model: str | None = None,
    scheme: str | None = None,
    sets: str = "atlantis",
    raw: bool = False,
) -> HeatmapView:
    """The heatmap of a [[heatmap]] name or family, optionally with a model's predictions (`ftui heatmap`)."""
    choice = resolve_heatmap(registry, name_or_family)
    chosen_sets = _sets(sets)
    chosen = _scheme(registry, scheme, raw)
    if model is not None:
        check_choice(model, MODELS, "model")
        if raw:
            raise AnalysisError("--predict needs normalised values; leave out --raw")
        if choice.predict_from is None:
            raise _no_predict_from(registry, choice)
    target, source = _matrices(registry, runs_dir, choice, chosen, chosen_sets, with_source=model is not None)
    if model is None or source is None:
        return HeatmapView(target)
    return HeatmapView(target, predict(target, source, model))


@dataclass(frozen=True, eq=False)
class BrowsedHeatmap:
    """What the heatmap screen shows: the view, every model's scores while predicting, and why a prediction
    that was asked for is not shown."""

    view: HeatmapView
    scores: list[ModelScore]
    note: str


RAW_PREDICTION_NOTE = "predictions need normalised values: showing raw actual values only"


def browse_heatmap(
    registry: RegistryLike,
    runs_dir: Path,
    name_or_family: str,
    *,
    model: str | None = None,
    scheme: str | None = None,
    sets: str = "atlantis",
    raw: bool = False,
    results: ReadResults | None = None,
    progress: ReadProgress | None = None,
) -> BrowsedHeatmap:
    """`build_view` for the app, whose keys combine any model with any heatmap: a prediction that cannot be
    made shows the actual values (and says why, unless the heatmap has no source family at all) instead of
    failing; with the predictions come every model's scores (`ftui predict`'s)."""
    choice = resolve_heatmap(registry, name_or_family)
    chosen_sets = _sets(sets)
    chosen = _scheme(registry, scheme, raw)
    if model is not None:
        check_choice(model, MODELS, "model")
    predicting = model is not None and not raw and choice.predict_from is not None
    note = RAW_PREDICTION_NOTE if model is not None and raw and choice.predict_from is not None else ""
    target, source = _matrices(
        registry, runs_dir, choice, chosen, chosen_sets, with_source=predicting, results=results,
        progress=progress,
    )  # fmt: skip
    if model is None or source is None:
        return BrowsedHeatmap(HeatmapView(target), [], note)
    try:
        prediction = predict(target, source, model)
        scores = score_all(target, source)
    except PredictionError as error:
        return BrowsedHeatmap(HeatmapView(target), [], str(error))
    return BrowsedHeatmap(HeatmapView(target, prediction), scores, "")


@dataclass(frozen=True, eq=False)
class FamilyScores:
    """Every model's scores for one predicted family, best first, and the per-task interference summary."""

    target: FamilyMatrix
    source: FamilyMatrix
    scores: list[ModelScore]
    interference_model: str
    interference: list[TaskInterference]


def score_family(
    registry: RegistryLike,
    runs_dir: Path,
    name_or_family: str,
    *,
    scheme: str | None = None,
    sets: str = "atlantis",
    interference_model: str = "max",
) -> FamilyScores:
    choice = resolve_heatmap(registry, name_or_family)
    if choice.predict_from is None:
        predictable = [h.family for h in registry.heatmaps if h.predict_from]
        raise AnalysisError(
            f"{name_or_family!r} has no predict_from family in the registry "
            f"(families with predictions: {', '.join(predictable) or 'none'})"
        )
    chosen_sets = _sets(sets)
    check_choice(interference_model, MODELS, "model")
    chosen = _scheme(registry, scheme, raw=False)
    target, source = _matrices(registry, runs_dir, choice, chosen, chosen_sets, with_source=True)
    assert source is not None  # the heatmap has a predict_from family
    return FamilyScores(
        target=target,
        source=source,
        scores=score_all(target, source),
        interference_model=interference_model,
        interference=interference(predict(target, source, interference_model)),
    )
