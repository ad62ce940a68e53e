"""inside (I): `inside(c_T;c_H1,...,c_Hk)=TRUE|FALSE`, k = 3..5: is T in the convex hull of the H cities?

The hull is closed (a point on its boundary is inside, as with the original's Delaunay test); a degenerate
hull (all hull cities on one line) gives FALSE. Balanced 50/50.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from engine.tasks.base import Task

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
        # With coordinates relative to T, r_i = H_i - T: orient(H_i, H_j, T) = r_i x r_j =: o_ij, and twice
        # the signed area of (H_i, H_j, H_k) is o_ij + o_jk + o_ki, so 10 products serve all 10 triangles.
        # |r| <= 3600 so every product and sum fits int32, which halves the memory traffic.
        q = np.maximum(queries, 0)
        xy32 = xy.astype(np.int32)
        rx = xy32[q[:, 1:], 0] - xy32[q[:, :1], 0]
        ry = xy32[q[:, 1:], 1] - xy32[q[:, :1], 1]
        used = queries[:, 1:] >= 0
        hull = self.max_cities - 1
        o = {(i, j): rx[:, i] * ry[:, j] - ry[:, i] * rx[:, j] for i, j in combinations(range(hull), 2)}
        inside = np.zeros(len(queries), dtype=bool)
        for i, j, k in combinations(range(hull), 3):
            a, b, c = o[i, j], o[j, k], -o[i, k]
            negative = (a < 0) | (b < 0) | (c < 0)
            positive = (a > 0) | (b > 0) | (c > 0)
            # positions fill from the left, so k used implies i and j used
            inside |= used[:, k] & ((a + b + c) != 0) & ~(negative & positive)
        return inside.astype(np.int64)
