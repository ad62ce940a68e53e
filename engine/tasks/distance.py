"""distance (D): `dist(c_A,c_B)=D`, D = round(Euclidean distance), absolute error."""

from __future__ import annotations

import numpy as np

from engine.tasks.base import Task
from engine.tasks.geometry import columns, distance


class Distance(Task):
    name = "distance"
    short = "D"
    metric = "abs_error"
    failure_value = 4024.9  # sqrt(3600^2 + 1800^2), the diagonal of the map, as in the original
    max_new_tokens = 20
    head = "dist("
    min_cities = max_cities = 2

    def values(self, xy: np.ndarray, queries: np.ndarray) -> np.ndarray:
        x, y = columns(xy)
        return np.rint(distance(x, y, queries[:, 0], queries[:, 1])).astype(np.int64)
