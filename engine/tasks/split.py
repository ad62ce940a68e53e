"""The train/test split: a query belongs to the test split iff a fixed hash of its city IDs is 0 mod 16.

A query's identity is the ordered tuple of its city IDs (what the prompt spells). The hash ignores the task,
so a held-out ordered tuple is held out for every task that could ask about it.
"""

from __future__ import annotations

import numpy as np

TEST_MODULUS = 16
SPLITS = ("train", "test")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, elementwise on uint64 (wrapping arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def query_hash(city_ids: np.ndarray) -> np.ndarray:
    """uint64 hash per row of an int matrix of city IDs, -1 marking unused positions."""
    ids = np.asarray(city_ids, dtype=np.int64)
    h = np.zeros(len(ids), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(ids.shape[1]):
            # +1 keeps an unused position (-1 -> 0) distinct from every real ID (0..9999 -> 1..10000)
            h = _splitmix64(h ^ (ids[:, j] + 1).astype(np.uint64))
    return h


def is_test(city_ids: np.ndarray) -> np.ndarray:
    """Boolean per row: does this query belong to the test split?"""
    return query_hash(city_ids) % np.uint64(TEST_MODULUS) == 0
