"""compass (Co): `compass(c_A,c_B)=DIR`, the bearing A->B in 8 sectors of 45 degrees, accuracy."""

from __future__ import annotations

import numpy as np

from engine.tasks.base import Task
from engine.tasks.geometry import columns

DIRECTIONS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")  # counter-clockwise from east; N is +y


class Compass(Task):
    name = "compass"
    short = "Co"
    metric = "accuracy"
    failure_value = 0.0
    max_new_tokens = 20
    head = "compass("
    min_cities = max_cities = 2
    labels = DIRECTIONS

    def values(self, xy: np.ndarray, queries: np.ndarray) -> np.ndarray:
        x, y = columns(xy)
        dx = (x[queries[:, 1]] - x[queries[:, 0]]).astype(np.float64)
        dy = (y[queries[:, 1]] - y[queries[:, 0]]).astype(np.float64)
        degrees = np.degrees(np.arctan2(dy, dx))
        degrees = np.where(degrees < 0, degrees + 360.0, degrees)
        sector = (((degrees + 22.5) % 360.0) // 45.0).astype(np.int64)
        # two cities on the same grid point have no bearing; the original answered N for them
        return np.where((dx == 0) & (dy == 0), DIRECTIONS.index("N"), sector)
