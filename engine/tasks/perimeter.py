"""perimeter (P): `perimeter(c_1,...,c_n)=P`, n = 2..5, the closed polygon's length, absolute error.

For n = 2 the answer is the single distance (not twice it), as in the original.
"""

from __future__ import annotations

import numpy as np

from engine.tasks.base import Task
from engine.tasks.geometry import columns, distance


class Perimeter(Task):
    name = "perimeter"
    short = "P"
    metric = "abs_error"
    failure_value = 20_000.0
    max_new_tokens = 30
    head = "perimeter("
    min_cities, max_cities = 2, 5

    def values(self, xy: np.ndarray, queries: np.ndarray) -> np.ndarray:
        x, y = columns(xy)
        q = np.maximum(queries, 0)
        count = np.full(len(q), self.min_cities, dtype=np.int64)
        for j in range(self.min_cities, self.max_cities):
            count += queries[:, j] >= 0
        # edges summed in order 0-1, 1-2, ..., (n-1)-0; n = 2 has only the edge 0-1
        total = distance(x, y, q[:, 0], q[:, 1])
        for j in range(1, self.max_cities - 1):
            total += np.where(j + 1 < count, distance(x, y, q[:, j], q[:, j + 1]), 0.0)
        last = np.take_along_axis(q, (count - 1)[:, None], axis=1)[:, 0]
        total += np.where(count > 2, distance(x, y, last, q[:, 0]), 0.0)
        return np.rint(total).astype(np.int64)
