"""inside (I): `inside(c_T;c_H1,...,c_Hk)=TRUE|FALSE`, k = 3..5: is T in the convex hull of the H cities?

The hull is closed (a point on its boundary is inside, as with the original's Delaunay test); a degenerate
hull (all hull cities on one line) gives FALSE. Balanced 50/50.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from engine.tasks.base import Task
from engine.tasks.trianglearea import cross

MIN_HULL, MAX_HULL = 3, 5


class Inside(Task):
    name = "inside"
    short = "I"
    metric = "accuracy"
    failure_value = 0.0
    max_new_tokens = 20
    head = "inside("
    min_cities, max_cities = 1 + MIN_HULL, 1 + MAX_HULL
    labels = ("FALSE", "TRUE")
    balanced = True

    def separator(self, position: int) -> str:
        return ";" if position == 1 else ","

    def values(self, xy: np.ndarray, queries: np.ndarray) -> np.ndarray:
        # The hull of k points is the union of the non-degenerate triangles on them (Caratheodory), so
        # T is inside iff some non-degenerate triangle of hull cities contains it (closed).
        n = len(queries)
        t = xy[queries[:, 0]]
        inside = np.zeros(n, dtype=bool)
        for i, j, k in combinations(range(1, self.max_cities), 3):
            used = queries[:, k] >= 0  # positions fill from the left, so k used implies i and j used
            a, b, c = xy[queries[:, i]], xy[queries[:, j]], xy[queries[:, k]]
            area = cross(a, b, c)
            d1, d2, d3 = cross(a, b, t), cross(b, c, t), cross(c, a, t)
            same_side = ((d1 >= 0) & (d2 >= 0) & (d3 >= 0)) | ((d1 <= 0) & (d2 <= 0) & (d3 <= 0))
            inside |= used & (area != 0) & same_side
        return inside.astype(np.int64)
