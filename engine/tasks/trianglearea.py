"""trianglearea (T): `triarea(c_A,c_B,c_C)=S`, S = round(shoelace area), absolute error."""

from __future__ import annotations

import numpy as np

from engine.tasks.base import Task
from engine.tasks.geometry import columns, orient


class TriangleArea(Task):
    name = "trianglearea"
    short = "T"
    metric = "abs_error"
    failure_value = 3_240_000.0  # half the map's area (3600 x 1800 / 2)
    max_new_tokens = 30
    head = "triarea("
    min_cities = max_cities = 3

    def values(self, xy: np.ndarray, queries: np.ndarray) -> np.ndarray:
        x, y = columns(xy)
        a, b, c = queries[:, 0], queries[:, 1], queries[:, 2]
        twice = np.abs(orient(x[a], y[a], x[b], y[b], x[c], y[c]))
        # twice the area is an exact integer; /2 is exact in float64, so rint rounds .5 half to even
        return np.rint(twice / 2.0).astype(np.int64)
