"""The colour scales shared by the terminal grid and the exported figure.

The anchors are Matplotlib's `Greens` and `coolwarm` sampled at nine evenly spaced points, so the terminal
shows the colours the figure has without importing Matplotlib.
"""

from __future__ import annotations

import math
from typing import Final, Literal

RGB = tuple[int, int, int]
Scale = Literal["green", "error"]

GREENS: Final[tuple[RGB, ...]] = (
    (247, 252, 245), (229, 245, 224), (199, 233, 192), (160, 217, 155), (115, 196, 118),
    (64, 170, 93), (34, 138, 68), (0, 108, 44), (0, 68, 27),
)  # fmt: skip
COOLWARM: Final[tuple[RGB, ...]] = (
    (59, 76, 192), (98, 130, 234), (141, 176, 254), (185, 208, 249), (221, 220, 220),
    (245, 196, 172), (244, 152, 122), (221, 95, 75), (180, 4, 38),
)  # fmt: skip
MISSING: Final[RGB] = (200, 200, 200)

# Fixed ranges (STUDY.md): values 0..1 on green; errors -0.5..+0.5 on coolwarm, centred at 0.
GREEN_RANGE: Final = (0.0, 1.0)
ERROR_RANGE: Final = (-0.5, 0.5)


def _interpolate(anchors: tuple[RGB, ...], position: float) -> RGB:
    position = min(max(position, 0.0), 1.0) * (len(anchors) - 1)
    low = min(int(position), len(anchors) - 2)
    fraction = position - low
    a, b = anchors[low], anchors[low + 1]
    return (
        round(a[0] + (b[0] - a[0]) * fraction),
        round(a[1] + (b[1] - a[1]) * fraction),
        round(a[2] + (b[2] - a[2]) * fraction),
    )


def cell_colour(value: float, scale: Scale) -> RGB:
    """Background of a cell: grey when missing, else its place on the fixed scale (clipped at the ends)."""
    if not math.isfinite(value):
        return MISSING
    if scale == "green":
        low, high = GREEN_RANGE
        return _interpolate(GREENS, (value - low) / (high - low))
    low, high = ERROR_RANGE
    return _interpolate(COOLWARM, (value - low) / (high - low))


def text_colour(background: RGB) -> RGB:
    """Black or white, whichever reads better on the background (relative luminance, sRGB weights)."""
    r, g, b = background
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)
