"""Both normalisation schemes against values computed by hand, one test per branch."""

from __future__ import annotations

import math

import pytest

from ftui.analysis.normalise import normalise_improvement, normalise_perfect


@pytest.mark.parametrize(
    ("value", "baseline", "metric", "expected"),
    [
        (25.0, 100.0, "abs_error", 0.75),  # (100 - 25) / 100
        (0.0, 100.0, "abs_error", 1.0),  # perfect
        (150.0, 100.0, "abs_error", 0.0),  # worse than the baseline: -0.5 clipped to 0
        (5.0, 0.0, "abs_error", 0.0),  # zero denominator
        (0.8, 0.6, "accuracy", 0.5),  # (0.8 - 0.6) / (1 - 0.6)
        (1.0, 0.5, "accuracy", 1.0),
        (0.5, 0.6, "accuracy", 0.0),  # -0.25 clipped to 0
        (1.0, 1.0, "accuracy", 0.0),  # zero denominator
    ],
)
def test_perfect(value: float, baseline: float, metric: str, expected: float) -> None:
    assert normalise_perfect(value, baseline, metric) == pytest.approx(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "b_atl", "b_std", "metric", "expected"),
    [
        # Regular error task: ln(b_atl / v) / ln(b_atl / b_std).
        (100.0, 1000.0, 10.0, "abs_error", math.log(10) / math.log(100)),  # 0.5
        (10.0, 1000.0, 10.0, "abs_error", 1.0),  # as good as on known cities
        (1.0, 1000.0, 10.0, "abs_error", 1.5),  # ln 1000 / ln 100 = 1.5 exactly: the upper clip
        (0.1, 1000.0, 10.0, "abs_error", 1.5),  # 2.0 clipped to 1.5
        (2000.0, 1000.0, 10.0, "abs_error", 0.0),  # worse than the pretrained model on Atlantis
        # Regular accuracy task: (v - b_atl) / (b_std - b_atl).
        (0.6, 0.3, 0.9, "accuracy", 0.5),
        (1.0, 0.3, 0.9, "accuracy", 0.7 / 0.6),  # above 1 is kept (up to 1.5)
        (0.2, 0.3, 0.9, "accuracy", 0.0),
        # Degenerate error task, b_std >= b_atl: 0 if no better than b_atl, else 1.
        (15.0, 10.0, 20.0, "abs_error", 0.0),
        (5.0, 10.0, 20.0, "abs_error", 1.0),
        (10.0, 10.0, 10.0, "abs_error", 0.0),
        # Degenerate error task, v <= 0 (the log is undefined): at least as good as b_std -> 1.
        (0.0, 100.0, 10.0, "abs_error", 1.0),
        # Degenerate error task, b_std = 0: linear between b_atl (0) and b_std (1).
        (25.0, 100.0, 0.0, "abs_error", 0.75),
        (100.0, 100.0, 0.0, "abs_error", 0.0),
        # Degenerate accuracy task: zero denominator, or the standard baseline not better.
        (0.5, 0.5, 0.5, "accuracy", 0.0),
        (0.7, 0.5, 0.5, "accuracy", 1.0),
        (0.7, 0.8, 0.6, "accuracy", 0.0),
        (0.9, 0.8, 0.6, "accuracy", 1.0),
    ],
)
def test_improvement(value: float, b_atl: float, b_std: float, metric: str, expected: float) -> None:
    assert normalise_improvement(value, b_atl, b_std, metric) == pytest.approx(expected)  # type: ignore[arg-type]


def test_unknown_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="allowed: abs_error, accuracy"):
        normalise_perfect(1.0, 2.0, "f1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="allowed: abs_error, accuracy"):
        normalise_improvement(1.0, 2.0, 1.0, "f1")  # type: ignore[arg-type]
