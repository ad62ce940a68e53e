"""trianglearea (T): `triarea(c_A,c_B,c_C)=S`, S = round(shoelace area), absolute error."""

from __future__ import annotations

import numpy as np

from engine.tasks.base import Task


def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int64 z-component of (a - o) x (b - o) for coordinate arrays [N, 2]: > 0 when o->a->b turns left."""
    return (a[:, 0] - o[:, 0]) * (b[:, 1] - o[:, 1]) - (a[:, 1] - o[:, 1]) * (b[:, 0] - o[:, 0])


class TriangleArea(Task):
    name = "trianglearea"
    short = "T"
    metric = "abs_error"
    failure_value = 3_240_000.0  # half the map's area (3600 x 1800 / 2)
    max_new_tokens = 30
    head = "triarea("
    min_cities = max_cities = 3

    def values(self, xy: np.ndarray, queries: np.ndarray) -> np.ndarray:
        a, b, c = xy[queries[:, 0]], xy[queries[:, 1]], xy[queries[:, 2]]
        # |cross| is an exact integer; /2 is exact in float64, so rint rounds the .5 cases half to even
        return np.rint(np.abs(cross(a, b, c)) / 2.0).astype(np.int64)
