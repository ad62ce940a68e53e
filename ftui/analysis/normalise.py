"""Normalisation schemes of heatmap values (STUDY.md, "Normalisation"), one scalar function per scheme.

Both map a raw metric (mean absolute error, or accuracy) onto a scale where 0 = no better than the pretrained
baseline and 1 = as good as it gets. Degenerate inputs never raise: every branch is spelled out below so that
a test can hit each one by hand.
"""

from __future__ import annotations

import math
from typing import Final

from ftui.analysis.names import METRICS, SCHEMES, Metric  # noqa: F401  (re-exported)

# The improvement scheme may exceed 1 (better on Atlantis than the baseline on known cities): clipped here.
IMPROVEMENT_MAX: Final = 1.5


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def normalise_perfect(value: float, baseline: float, metric: Metric) -> float:
    """0 = the baseline on the same set, 1 = perfect; clipped to [0, 1]; a zero denominator gives 0.

    Error tasks: (b - v) / b.  Accuracy tasks: (v - b) / (1 - b).
    """
    if metric == "abs_error":
        denominator = baseline
        numerator = baseline - value
    elif metric == "accuracy":
        denominator = 1.0 - baseline
        numerator = value - baseline
    else:
        raise ValueError(f"unknown metric {metric!r} (allowed: {', '.join(METRICS)})")
    if denominator == 0:
        return 0.0
    return _clip(numerator / denominator, 0.0, 1.0)


def normalise_improvement(value: float, base_atlantis: float, base_standard: float, metric: Metric) -> float:
    """Normalised improvement: 0 = no better than the baseline on Atlantis, 1 = as good as on known cities.

    Error tasks: ln(b_atl / v) / ln(b_atl / b_std).  Accuracy tasks: (v - b_atl) / (b_std - b_atl).
    Clipped to [0, 1.5].

    Degenerate cases, where the formula is undefined or points the wrong way (errors: b_std >= b_atl, v <= 0,
    b_atl <= 0 or b_std <= 0; accuracy: b_std <= b_atl): 0 if v is no better than b_atl, 1 if v is at least as
    good as b_std, linear in between (the first test wins when both hold, which only happens when b_std is not
    better than b_atl).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (allowed: {', '.join(METRICS)})")
    is_error = metric == "abs_error"
    if is_error:
        regular = value > 0 and base_standard > 0 and base_atlantis > base_standard
    else:
        regular = base_standard > base_atlantis
    if regular:
        if is_error:
            ratio = math.log(base_atlantis / value) / math.log(base_atlantis / base_standard)
        else:
            ratio = (value - base_atlantis) / (base_standard - base_atlantis)
        return _clip(ratio, 0.0, IMPROVEMENT_MAX)
    # Degenerate: "better" means lower for errors, higher for accuracy.
    no_better = value >= base_atlantis if is_error else value <= base_atlantis
    if no_better:
        return 0.0
    at_least_standard = value <= base_standard if is_error else value >= base_standard
    if at_least_standard:
        return 1.0
    # Strictly between a worse b_atl and a better b_std: only reachable for errors with b_std <= 0.
    return _clip((base_atlantis - value) / (base_atlantis - base_standard), 0.0, 1.0)
