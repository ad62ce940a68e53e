"""Predicting a multi-task family from its single-task family, and scoring the predictions.

For a target row trained on the task set S and a column task j, the inputs ("teachers") are the normalised
values, in column j and for the same seed, of the source family's single-task rows of each task in S. A model
combines them into one predicted value. Normalise first, then combine: predictions only make sense on a
normalised scale, never on raw metrics.

Models:
- `max` (best teacher, the original study's only model), `mean`, `min`, `geomean` (k-th root of the product),
  `harmonic` (k / sum of reciprocals; 0 when any teacher is 0).
- `max_decay`: lambda * max, lambda fitted by least squares (lambda = sum(max*y) / sum(max^2)).
- `linear`: a*max + b*mean + c*z + d, fitted by least squares, where z is the interference term
  z = (k - 1) * max * [j not in S]: the best teacher's value on a task the run was NOT trained on, scaled by
  the number of other tasks sharing the run. It is 0 on trained cells and for single-task rows, so c measures
  how much sharing a run with other tasks costs (c < 0) or gains (c > 0) on transfer, beyond max and mean.

Fitted models are scored by leave-one-out over rows: each row is predicted by a fit on all the other rows (all
their seeds and cells), so no model is judged on data it was fitted to. The shown predictions of fitted models
are these leave-one-out predictions too.

Error = predicted - actual: positive means the run did worse than predicted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from ftui.analysis.matrix import FamilyMatrix, nan_mean
from ftui.analysis.names import FITTED_MODELS, MODELS  # noqa: F401  (re-exported)


class PredictionError(ValueError):
    """The prediction cannot be set up (unknown model, raw values, a task without a single-task row)."""


@dataclass(frozen=True, eq=False)
class Prediction:
    """Predicted values of the target family, per seed, aligned with `target.per_seed`."""

    model: str
    target: FamilyMatrix
    source: FamilyMatrix
    per_seed: np.ndarray
    # Parameters of a fit on ALL rows (for reporting; the predictions themselves are leave-one-out).
    params: tuple[float, ...]

    @property
    def predicted(self) -> np.ndarray:
        """Mean over seeds of the prediction wherever the teachers exist (even if the target run does not)."""
        return nan_mean(self.per_seed, axis=0)

    @property
    def error(self) -> np.ndarray:
        """predicted - actual, averaged over the seeds where both exist; NaN where none does."""
        return nan_mean(self.per_seed - self.target.per_seed, axis=0)

    def paired(self) -> tuple[np.ndarray, np.ndarray]:
        """(predicted, actual), each averaged over the seeds where both exist: what the scores compare."""
        both = np.isfinite(self.per_seed) & np.isfinite(self.target.per_seed)
        predicted = nan_mean(np.where(both, self.per_seed, np.nan), axis=0)
        actual = nan_mean(np.where(both, self.target.per_seed, np.nan), axis=0)
        return predicted, actual


def teacher_indices(target: FamilyMatrix, source: FamilyMatrix) -> list[list[int]]:
    """For each target row, the source rows (single-task) of its tasks, in the row's task order."""
    single = {row.tasks[0]: index for index, row in enumerate(source.rows) if len(row.tasks) == 1}
    teachers: list[list[int]] = []
    for row in target.rows:
        absent = [task for task in row.tasks if task not in single]
        if absent:
            raise PredictionError(
                f"family {source.family!r} has no single-task row for {', '.join(absent)} "
                f"(needed to predict {row.name!r})"
            )
        teachers.append([single[task] for task in row.tasks])
    return teachers


def _aligned_source(target: FamilyMatrix, source: FamilyMatrix) -> np.ndarray:
    """The source's per-seed values on the target's seed axis (NaN for a seed the source lacks)."""
    aligned = np.full((len(target.seeds),) + source.per_seed.shape[1:], np.nan)
    for s, seed in enumerate(target.seeds):
        if seed in source.seeds:
            aligned[s] = source.per_seed[source.seeds.index(seed)]
    return aligned


def _geomean(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.prod(x, axis=-1) ** (1.0 / x.shape[-1]))


def _harmonic(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        reciprocal_sum = np.sum(1.0 / x, axis=-1)
    # Any zero teacher makes the sum infinite and the harmonic mean 0; NaN stays NaN.
    return np.asarray(x.shape[-1] / reciprocal_sum)


COMBINERS: Final[dict[str, Callable[[np.ndarray], np.ndarray]]] = {
    "max": lambda x: np.max(x, axis=-1),
    "mean": lambda x: np.mean(x, axis=-1),
    "min": lambda x: np.min(x, axis=-1),
    "geomean": _geomean,
    "harmonic": _harmonic,
}


@dataclass(frozen=True, eq=False)
class _Features:
    """Per target cell and seed: the teacher summaries the models use, shape (seeds, rows, columns)."""

    max: np.ndarray
    mean: np.ndarray
    interference: np.ndarray


def _features(inputs: list[np.ndarray], target: FamilyMatrix) -> _Features:
    maxima = np.stack([np.max(x, axis=-1) for x in inputs], axis=1)
    means = np.stack([np.mean(x, axis=-1) for x in inputs], axis=1)
    others = np.array([len(row.tasks) - 1 for row in target.rows], dtype=float)[None, :, None]
    transfer = (~target.trained)[None, :, :]
    return _Features(max=maxima, mean=means, interference=others * maxima * transfer)


def _design(features: _Features, model: str) -> np.ndarray:
    """Design matrix (seeds, rows, columns, p) of a fitted model."""
    if model == "max_decay":
        return features.max[..., None]
    return np.stack([features.max, features.mean, features.interference, np.ones_like(features.max)], axis=-1)


def _fit(design: np.ndarray, actual: np.ndarray, rows: np.ndarray, model: str) -> np.ndarray | None:
    """Least-squares parameters from the given rows' finite cells, or None when there is nothing to fit."""
    x = design[:, rows].reshape(-1, design.shape[-1])
    y = actual[:, rows].reshape(-1)
    usable = np.isfinite(y) & np.isfinite(x).all(axis=1)
    x, y = x[usable], y[usable]
    if len(y) == 0:
        return None
    if model == "max_decay":
        denominator = float(np.dot(x[:, 0], x[:, 0]))
        return np.array([float(np.dot(x[:, 0], y)) / denominator if denominator > 0 else 1.0])
    # lstsq gives the minimum-norm solution when the design is rank deficient (e.g. every row has k = 2).
    params, *_ = np.linalg.lstsq(x, y, rcond=None)
    return np.asarray(params)


def predict(target: FamilyMatrix, source: FamilyMatrix, model: str) -> Prediction:
    """Predict every cell of `target` (every seed) from `source`'s single-task rows with `model`."""
    if model not in MODELS:
        raise PredictionError(f"unknown model {model!r} (allowed: {', '.join(MODELS)})")
    if target.scheme == "raw" or source.scheme == "raw":
        raise PredictionError("predictions need normalised values, not raw metrics")
    if [c.name for c in target.columns] != [c.name for c in source.columns]:
        raise PredictionError(f"families {target.family!r} and {source.family!r} have different columns")
    teachers = teacher_indices(target, source)
    aligned = _aligned_source(target, source)
    # inputs[r]: (seeds, columns, k_r), the teachers' values in each column.
    inputs = [np.moveaxis(aligned[:, indices, :], 1, -1) for indices in teachers]
    if model in COMBINERS:
        combine = COMBINERS[model]
        per_seed = np.stack([combine(x) for x in inputs], axis=1)
        return Prediction(model, target, source, per_seed, params=())
    design = _design(_features(inputs, target), model)
    per_seed = np.full(target.per_seed.shape, np.nan)
    all_rows = np.arange(len(target.rows))
    for held_out in all_rows:
        params = _fit(design, target.per_seed, all_rows[all_rows != held_out], model)
        if params is not None:
            per_seed[:, held_out] = design[:, held_out] @ params
    full = _fit(design, target.per_seed, all_rows, model)
    return Prediction(
        model, target, source, per_seed, params=tuple(float(p) for p in full) if full is not None else ()
    )


@dataclass(frozen=True)
class CellScores:
    """Agreement between predicted and actual cells: mean absolute error, root mean square error, R^2."""

    mae: float
    rmse: float
    r2: float
    n: int


@dataclass(frozen=True)
class ModelScore:
    model: str
    all: CellScores
    trained: CellScores
    transfer: CellScores
    params: tuple[float, ...]


def cell_scores(predicted: np.ndarray, actual: np.ndarray) -> CellScores:
    """MAE, RMSE and R^2 over the cells where both are finite (NaN scores when there are none).

    R^2 = 1 - SS_res / SS_tot around the mean of the actual values; NaN when the actual values are constant
    (SS_tot <= 1e-12 per cell).
    """
    usable = np.isfinite(predicted) & np.isfinite(actual)
    p, a = predicted[usable], actual[usable]
    if len(a) == 0:
        return CellScores(mae=np.nan, rmse=np.nan, r2=np.nan, n=0)
    residual = p - a
    ss_tot = float(np.sum((a - a.mean()) ** 2))
    # Constant actual values (up to float noise from normalising) leave R^2 undefined, not -1e29.
    constant = ss_tot <= 1e-12 * len(a)
    r2 = np.nan if constant else 1.0 - float(np.sum(residual**2)) / ss_tot
    return CellScores(
        mae=float(np.mean(np.abs(residual))), rmse=float(np.sqrt(np.mean(residual**2))), r2=r2, n=int(len(a))
    )


def score(prediction: Prediction) -> ModelScore:
    predicted, actual = prediction.paired()
    trained = prediction.target.trained
    return ModelScore(
        model=prediction.model,
        all=cell_scores(predicted, actual),
        trained=cell_scores(np.where(trained, predicted, np.nan), actual),
        transfer=cell_scores(np.where(~trained, predicted, np.nan), actual),
        params=prediction.params,
    )


def _rank_key(item: ModelScore) -> tuple[bool, float, int]:
    mae = item.all.mae
    return (bool(np.isnan(mae)), 0.0 if np.isnan(mae) else mae, MODELS.index(item.model))


def score_models(
    target: FamilyMatrix, source: FamilyMatrix, models: Sequence[str] = MODELS
) -> list[ModelScore]:
    """Every model's scores, best first (lowest MAE over all cells; models without any score last)."""
    return sorted((score(predict(target, source, model)) for model in models), key=_rank_key)


@dataclass(frozen=True)
class TaskInterference:
    """Mean error (predicted - actual) on the transfer cells of the rows whose task set contains `task`.

    A clearly positive value marks a "divergent" task: runs that include it do worse than predicted on the
    tasks they were not trained on.
    """

    task: str
    short: str
    mean_error: float
    cells: int
    rows: int


def interference(prediction: Prediction) -> list[TaskInterference]:
    predicted, actual = prediction.paired()
    error = predicted - actual
    transfer = ~prediction.target.trained
    summary: list[TaskInterference] = []
    for column in prediction.target.columns:
        with_task = np.array([column.name in row.tasks for row in prediction.target.rows], dtype=bool)
        cells = error[with_task[:, None] & transfer]
        cells = cells[np.isfinite(cells)]
        summary.append(
            TaskInterference(
                task=column.name,
                short=column.short,
                mean_error=float(cells.mean()) if len(cells) else np.nan,
                cells=int(len(cells)),
                rows=int(with_task.sum()),
            )
        )
    return summary
