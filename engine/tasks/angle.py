"""angle (A): `angle(c_A,c_B,c_C)=θ`, the angle at B between BA and BC in whole degrees, absolute error."""

from __future__ import annotations

import numpy as np

from engine.tasks.base import Task


class Angle(Task):
    name = "angle"
    short = "A"
    metric = "abs_error"
    failure_value = 180.0
    max_new_tokens = 30
    head = "angle("
    min_cities = max_cities = 3

    def values(self, xy: np.ndarray, queries: np.ndarray) -> np.ndarray:
        a, b, c = xy[queries[:, 0]], xy[queries[:, 1]], xy[queries[:, 2]]
        u, v = a - b, c - b
        cross = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
        dot = (u * v).sum(axis=1)
        # atan2(|u x v|, u . v) is accurate near 0 and 180 degrees, where acos of a ratio is not
        degrees = np.degrees(np.arctan2(np.abs(cross).astype(np.float64), dot.astype(np.float64)))
        degenerate = ~(u.any(axis=1) & v.any(axis=1))  # A or C at B's coordinates
        return np.where(degenerate, 0, np.rint(degrees)).astype(np.int64)
