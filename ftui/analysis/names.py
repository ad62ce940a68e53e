"""The analysis's vocabulary: normalisation schemes, evaluation sets, metrics and prediction models.

Plain constants, importable without numpy: the CLI builds its argument parser from them on every `ftui`
command, so they must cost nothing to import.
"""

from __future__ import annotations

from typing import Final, Literal

Metric = Literal["abs_error", "accuracy"]
METRICS: Final = ("abs_error", "accuracy")
SCHEMES: Final = ("perfect", "improvement")  # normalisation schemes
Scheme = Literal["perfect", "improvement", "raw"]
SCHEME_NAMES: Final = ("perfect", "improvement", "raw")  # the schemes, plus raw metrics
SetName = Literal["atlantis", "standard"]
SET_NAMES: Final = ("atlantis", "standard")
MODELS: Final = ("max", "mean", "min", "geomean", "harmonic", "max_decay", "linear")
FITTED_MODELS: Final = frozenset({"max_decay", "linear"})
