"""perimeter (P): `perimeter(c_1,...,c_n)=P`, n = 2..5, the closed polygon's length, absolute error.

For n = 2 the answer is the single distance (not twice it), as in the original.
"""

from __future__ import annotations

import numpy as np

from engine.tasks.base import Task
from engine.tasks.distance import pair_distance


class Perimeter(Task):
    name = "perimeter"
    short = "P"
    metric = "abs_error"
    failure_value = 20_000.0
    max_new_tokens = 30
    head = "perimeter("
    min_cities, max_cities = 2, 5

    def values(self, xy: np.ndarray, queries: np.ndarray) -> np.ndarray:
        count = (queries >= 0).sum(axis=1)
        total = np.zeros(len(queries))
        for j in range(self.max_cities):
            nxt = np.where(j + 1 < count, j + 1, 0)  # the closing edge returns to city 0
            edge = pair_distance(xy, queries[:, j], queries[np.arange(len(queries)), nxt])
            # edges summed in order 0-1, 1-2, ..., (n-1)-0; n = 2 has only the edge 0-1
            total += np.where((j < count) & ((j == 0) | (count > 2)), edge, 0.0)
        return np.rint(total).astype(np.int64)
