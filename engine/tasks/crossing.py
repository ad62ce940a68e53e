"""crossing (Cr): `cross(c_A,c_B;c_C,c_D)=TRUE|FALSE`: do segments AB and CD strictly intersect?

Strict: touching at an endpoint, a shared endpoint and collinear overlap are all FALSE. Balanced 50/50.
"""

from __future__ import annotations

import numpy as np

from engine.tasks.base import Task
from engine.tasks.trianglearea import cross


class Crossing(Task):
    name = "crossing"
    short = "Cr"
    metric = "accuracy"
    failure_value = 0.0
    max_new_tokens = 20
    head = "cross("
    min_cities = max_cities = 4
    labels = ("FALSE", "TRUE")
    balanced = True

    def separator(self, position: int) -> str:
        return ";" if position == 2 else ","

    def values(self, xy: np.ndarray, queries: np.ndarray) -> np.ndarray:
        a, b, c, d = (xy[queries[:, j]] for j in range(4))
        # exact integer orientations: AB separates C from D and CD separates A from B, none on a line
        strict = (np.sign(cross(a, b, c)) * np.sign(cross(a, b, d)) < 0) & (
            np.sign(cross(c, d, a)) * np.sign(cross(c, d, b)) < 0
        )
        return strict.astype(np.int64)
