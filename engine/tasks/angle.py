"""angle (A): `angle(c_A,c_B,c_C)=θ`, the angle at B between BA and BC in whole degrees, absolute error."""

from __future__ import annotations

import numpy as np

from engine.tasks.base import Task
from engine.tasks.geometry import columns


class Angle(Task):
    name = "angle"
    short = "A"
    metric = "abs_error"
    failure_value = 180.0
    max_new_tokens = 30
    head = "angle("
    min_cities = max_cities = 3

    def values(self, xy: np.ndarray, queries: np.ndarray) -> np.ndarray:
        x, y = columns(xy)
        a, b, c = queries[:, 0], queries[:, 1], queries[:, 2]
        ux, uy = x[a] - x[b], y[a] - y[b]
        vx, vy = x[c] - x[b], y[c] - y[b]
        cross = ux * vy - uy * vx
        dot = ux * vx + uy * vy
        # atan2(|u x v|, u . v) is accurate near 0 and 180 degrees, where acos of a ratio is not
        degrees = np.degrees(np.arctan2(np.abs(cross).astype(np.float64), dot.astype(np.float64)))
        degenerate = ((ux == 0) & (uy == 0)) | ((vx == 0) & (vy == 0))  # A or C on B's grid point
        return np.where(degenerate, 0, np.rint(degrees)).astype(np.int64)
