"""distance (D): `dist(c_A,c_B)=D`, D = round(Euclidean distance), absolute error."""

from __future__ import annotations

import numpy as np

from engine.tasks.base import Task


def pair_distance(xy: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 Euclidean distance between cities a and b (index arrays)."""
    d = xy[a] - xy[b]
    return np.sqrt((d * d).sum(axis=1).astype(np.float64))


class Distance(Task):
    name = "distance"
    short = "D"
    metric = "abs_error"
    failure_value = 4024.9  # sqrt(3600^2 + 1800^2), the diagonal of the map, as in the original
    max_new_tokens = 20
    head = "dist("
    min_cities = max_cities = 2

    def values(self, xy: np.ndarray, queries: np.ndarray) -> np.ndarray:
        return np.rint(pair_distance(xy, queries[:, 0], queries[:, 1])).astype(np.int64)
