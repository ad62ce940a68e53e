"""crossing (Cr): `cross(c_A,c_B;c_C,c_D)=TRUE|FALSE`: do segments AB and CD strictly intersect?

Strict: touching at an endpoint, a shared endpoint and collinear overlap are all FALSE. Balanced 50/50.
"""

from __future__ import annotations

import numpy as np

from engine.tasks.base import Task
from engine.tasks.geometry import columns, orient


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
        x, y = columns(xy)
        ax, ay, bx, by, cx, cy, dx, dy = (v[queries[:, j]] for j in range(4) for v in (x, y))
        # exact integer orientations: AB separates C from D and CD separates A from B, none on a line
        abc, abd = orient(ax, ay, bx, by, cx, cy), orient(ax, ay, bx, by, dx, dy)
        cda, cdb = orient(cx, cy, dx, dy, ax, ay), orient(cx, cy, dx, dy, bx, by)
        strict = (((abc > 0) & (abd < 0)) | ((abc < 0) & (abd > 0))) & (
            ((cda > 0) & (cdb < 0)) | ((cda < 0) & (cdb > 0))
        )
        return strict.astype(np.int64)
