"""Prediction models on hand-computed examples, leave-one-out without leakage, scores and interference."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from ftui.analysis.matrix import Column, FamilyMatrix, Row
from ftui.analysis.predict import (
    MODELS,
    PredictionError,
    cell_scores,
    interference,
    predict,
    score,
    score_models,
)


def make_matrix(
    family: str, rows: Sequence[tuple[str, tuple[str, ...]]], columns: Sequence[str], values: np.ndarray
) -> FamilyMatrix:
    """A normalised matrix typed in directly; `values` is (rows, columns) or (seeds, rows, columns)."""
    per_seed = np.asarray(values, dtype=float)
    if per_seed.ndim == 2:
        per_seed = per_seed[None]
    seeds = tuple(range(per_seed.shape[0]))
    return FamilyMatrix(
        family=family,
        rows=tuple(Row(name, tasks, seeds) for name, tasks in rows),
        columns=tuple(Column(name, name.upper()) for name in columns),
        seeds=seeds,
        scheme="perfect",
        sets="atlantis",
        per_seed=per_seed,
        done=np.ones(per_seed.shape[:2], dtype=bool),
        expected=np.ones(per_seed.shape[:2], dtype=bool),
        metrics=tuple("abs_error" for _ in columns),
    )


# Teachers: the single-task runs of tasks a and b, in columns a and b.
SOURCE = make_matrix(
    "one", [("one-a", ("a",)), ("one-b", ("b",))], ["a", "b"], np.array([[0.8, 0.2], [0.4, 0.6]])
)
TARGET = make_matrix(
    "two", [("two-ab", ("a", "b")), ("two-ba", ("b", "a"))], ["a", "b"], np.array([[0.7, 0.5], [0.6, 0.3]])
)


@pytest.mark.parametrize(
    ("model", "column_a", "column_b"),
    [
        ("max", 0.8, 0.6),
        ("mean", 0.6, 0.4),
        ("min", 0.4, 0.2),
        ("geomean", math.sqrt(0.8 * 0.4), math.sqrt(0.2 * 0.6)),
        ("harmonic", 2 / (1 / 0.8 + 1 / 0.4), 2 / (1 / 0.2 + 1 / 0.6)),
    ],
)
def test_combining_models_on_a_2x2_example(model: str, column_a: float, column_b: float) -> None:
    prediction = predict(TARGET, SOURCE, model)
    # Both rows have the same task set (in another order), so both get the same prediction.
    np.testing.assert_allclose(prediction.predicted, [[column_a, column_b], [column_a, column_b]])
    np.testing.assert_allclose(prediction.error, prediction.predicted - TARGET.values)


def test_error_sign_is_predicted_minus_actual() -> None:
    prediction = predict(TARGET, SOURCE, "max")
    # Row two-ab: predicted 0.8 in column a, actual 0.7 -> +0.1 (the run did worse than predicted).
    assert prediction.error[0, 0] == pytest.approx(0.1)
    # Row two-ab column b: predicted 0.6, actual 0.5 -> +0.1; row two-ba column a: 0.8 - 0.6 = +0.2.
    assert prediction.error[0, 1] == pytest.approx(0.1)
    assert prediction.error[1, 0] == pytest.approx(0.2)


def test_harmonic_with_a_zero_teacher_is_zero() -> None:
    source = make_matrix(
        "one", [("one-a", ("a",)), ("one-b", ("b",))], ["a", "b"], np.array([[0.0, 0.2], [0.4, 0.6]])
    )
    prediction = predict(TARGET, source, "harmonic")
    assert prediction.predicted[0, 0] == 0.0
    assert prediction.predicted[0, 1] == pytest.approx(2 / (1 / 0.2 + 1 / 0.6))


def _three_task_family(actual: np.ndarray) -> tuple[FamilyMatrix, FamilyMatrix]:
    source = make_matrix(
        "one",
        [("one-a", ("a",)), ("one-b", ("b",)), ("one-c", ("c",))],
        ["a", "b", "c"],
        np.array([[0.8, 0.2, 0.4], [0.3, 0.7, 0.1], [0.5, 0.3, 0.9]]),
    )
    target = make_matrix(
        "two",
        [("two-ab", ("a", "b")), ("two-bc", ("b", "c")), ("two-ca", ("c", "a"))],
        ["a", "b", "c"],
        actual,
    )
    return source, target


def test_max_decay_is_left_one_out_by_hand() -> None:
    maxima = np.array([[0.8, 0.7, 0.4], [0.5, 0.7, 0.9], [0.8, 0.3, 0.9]])  # max of the teachers, by hand
    actual = 0.5 * maxima
    actual[2] = maxima[2]  # the third row is an outlier with lambda = 1
    source, target = _three_task_family(actual)
    prediction = predict(target, source, "max_decay")
    # Row 3 held out: lambda fitted on rows 1 and 2 only is exactly 0.5.
    np.testing.assert_allclose(prediction.predicted[2], 0.5 * maxima[2])
    # Row 1 held out: lambda = sum(m * y) / sum(m^2) over rows 2 and 3, by hand.
    m, y = maxima[1:].ravel(), actual[1:].ravel()
    np.testing.assert_allclose(prediction.predicted[0], (m @ y) / (m @ m) * maxima[0])
    # The reported parameter is the fit on all rows.
    assert prediction.params[0] == pytest.approx(
        (maxima.ravel() @ actual.ravel()) / (maxima.ravel() @ maxima.ravel())
    )


def test_leave_one_out_does_not_leak_the_held_out_row() -> None:
    """Rows follow an exact linear law except one outlier row. A fit that saw the outlier cannot reproduce the
    law exactly, so the outlier's prediction equals the law only if its own row was really left out."""
    tasks = ["a", "b", "c", "d"]
    rng = np.random.default_rng(3)
    singles = rng.uniform(0.05, 0.95, size=(4, 4))
    source = make_matrix("one", [(f"one-{t}", (t,)) for t in tasks], tasks, singles)
    pairs = [(tasks[i], tasks[j]) for i in range(4) for j in range(i + 1, 4)]
    rows = [(f"two-{a}{b}", (a, b)) for a, b in pairs]
    law = np.zeros((len(pairs), 4))
    for r, (a, b) in enumerate(pairs):
        teachers = singles[[tasks.index(a), tasks.index(b)]]
        best, mean = teachers.max(axis=0), teachers.mean(axis=0)
        transfer = np.array([task not in (a, b) for task in tasks], dtype=float)
        law[r] = 0.6 * best + 0.3 * mean - 0.4 * (1 * best * transfer) + 0.05
    actual = law.copy()
    actual[-1] = rng.uniform(0.0, 1.0, size=4)  # the outlier row
    target = make_matrix("two", rows, tasks, actual)
    prediction = predict(target, source, "linear")
    np.testing.assert_allclose(prediction.predicted[-1], law[-1], atol=1e-9)
    # The other rows' fits include the outlier, so they are not exact: the fit does see its training rows.
    assert not np.allclose(prediction.predicted[:-1], law[:-1], atol=1e-6)
    # Fitted on all rows, the parameters are not the law either; on the law rows alone they are.
    exact = predict(make_matrix("two", rows[:-1], tasks, law[:-1]), source, "linear")
    np.testing.assert_allclose(exact.params, [0.6, 0.3, -0.4, 0.05], atol=1e-9)


def test_predictions_average_over_seeds_and_skip_missing_teachers() -> None:
    source_values = np.array([[[0.8, 0.2], [0.4, 0.6]], [[0.6, 0.4], [np.nan, 0.2]]])
    target_values = np.array([[[0.7, 0.5], [0.6, 0.3]], [[0.5, 0.1], [0.4, np.nan]]])
    source = make_matrix("one", [("one-a", ("a",)), ("one-b", ("b",))], ["a", "b"], source_values)
    target = make_matrix("two", [("two-ab", ("a", "b")), ("two-ba", ("b", "a"))], ["a", "b"], target_values)
    prediction = predict(target, source, "max")
    # Seed 1 lacks teacher b in column a: only seed 0 predicts column a (0.8); column b: mean(0.6, 0.4).
    np.testing.assert_allclose(prediction.predicted[0], [0.8, 0.5])
    # Error averages only the seeds where both exist: row two-ba column b: seed 0 only (0.6 - 0.3).
    assert prediction.error[1, 1] == pytest.approx(0.3)
    assert prediction.error[0, 1] == pytest.approx(((0.6 - 0.5) + (0.4 - 0.1)) / 2)


def test_cell_scores_by_hand() -> None:
    scores = cell_scores(np.array([1.0, 2.0, 3.0, np.nan]), np.array([1.0, 3.0, 5.0, 7.0]))
    assert scores.n == 3
    assert scores.mae == pytest.approx(1.0)
    assert scores.rmse == pytest.approx(math.sqrt(5 / 3))
    assert scores.r2 == pytest.approx(1 - 5 / 8)
    assert math.isnan(cell_scores(np.array([1.0, 2.0]), np.array([3.0, 3.0])).r2)


def test_scores_split_trained_and_transfer_cells_and_rank_best_first() -> None:
    source, target = _three_task_family(np.array([[0.7, 0.6, 0.1], [0.2, 0.6, 0.8], [0.7, 0.3, 0.8]]))
    max_score = score(predict(target, source, "max"))
    # Trained cells: (0.8-0.7), (0.7-0.6), (0.7-0.6), (0.9-0.8), (0.8-0.7), (0.9-0.8): all +0.1.
    assert max_score.trained.mae == pytest.approx(0.1)
    assert max_score.trained.n == 6
    # Transfer cells: two-ab column c: 0.4 - 0.1; two-bc column a: 0.5 - 0.2; two-ca column b: 0.3 - 0.3.
    assert max_score.transfer.mae == pytest.approx(0.2)
    assert max_score.transfer.n == 3
    ranked = score_models(target, source)
    assert sorted(item.model for item in ranked) == sorted(MODELS)
    maes = [item.all.mae for item in ranked]
    assert maes == sorted(maes)


def test_interference_marks_the_divergent_task() -> None:
    source, target = _three_task_family(np.array([[0.7, 0.6, 0.1], [0.2, 0.6, 0.8], [0.7, 0.3, 0.8]]))
    summary = {item.task: item for item in interference(predict(target, source, "max"))}
    # Task a is in two-ab (transfer c: +0.3) and two-ca (transfer b: 0.0).
    assert summary["a"].mean_error == pytest.approx(0.15)
    assert (summary["a"].cells, summary["a"].rows) == (2, 2)
    # Task b: two-ab (+0.3) and two-bc (transfer a: +0.3).
    assert summary["b"].mean_error == pytest.approx(0.3)
    assert summary["c"].mean_error == pytest.approx(0.15)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(PredictionError, match="allowed: max, mean"):
        predict(TARGET, SOURCE, "median")
    only_a = make_matrix("one", [("one-a", ("a",))], ["a", "b"], np.array([[0.8, 0.2]]))
    with pytest.raises(PredictionError, match="no single-task row for b"):
        predict(TARGET, only_a, "max")
