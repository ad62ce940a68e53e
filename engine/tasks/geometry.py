"""Planar geometry on integer city coordinates, elementwise over whole arrays.

Coordinates are tenths of a degree (|x| <= 1800, |y| <= 900), so a difference is at most 3600 and every
product of two differences, and the sum of two such products, fits int32; int32 halves the memory traffic
of int64 on these large arrays.
"""

from __future__ import annotations

import numpy as np


def columns(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) int32 columns of a coordinate table [n_cities, 2] (small: copied per call)."""
    return xy[:, 0].astype(np.int32), xy[:, 1].astype(np.int32)


def orient(
    ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray, cx: np.ndarray, cy: np.ndarray
) -> np.ndarray:
    """Twice the signed area of triangle ABC: > 0 when A -> B -> C turns left (counter-clockwise)."""
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


def distance(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 Euclidean distance between cities a and b (index arrays)."""
    dx, dy = x[a] - x[b], y[a] - y[b]
    return np.sqrt((dx * dx + dy * dy).astype(np.float64))
