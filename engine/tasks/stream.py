"""Prefix-stable query streams: the rows of (seed, task, set, split) are the same whatever n is asked.

The stream is cut into chunks of CHUNK_ROWS rows; chunk c is drawn with its own generator seeded from
SeedSequence([seed, task index, set index, split index, c]), so asking for fewer rows gives a prefix of
asking for more, and a fine-tune's 20,000 "replay" rows are the first rows of the pretraining stream.
"""

from __future__ import annotations

import numpy as np

from engine.tasks.base import SETS, Task
from engine.tasks.split import SPLITS
from engine.world import World

CHUNK_ROWS = 16_384  # even, so every whole chunk of a balanced task is exactly 50/50


def chunk_rng(seed: int, task_index: int, set_name: str, split: str, chunk: int) -> np.random.Generator:
    """The generator of one chunk (never Python's hash(): it is salted per process)."""
    key = [seed, task_index, SETS.index(set_name), SPLITS.index(split), chunk]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))


def stream_queries(
    task: Task, task_index: int, world: World, set_name: str, split: str, seed: int, n: int
) -> np.ndarray:
    """The first n queries of the stream (int32 [n, task.max_cities])."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; allowed: {', '.join(SPLITS)}")
    n_chunks = -(-n // CHUNK_ROWS)
    chunks = [
        task.sample(world, CHUNK_ROWS, set_name, chunk_rng(seed, task_index, set_name, split, c), split=split)
        for c in range(n_chunks)
    ]
    if not chunks:
        return np.empty((0, task.max_cities), dtype=np.int32)
    return np.concatenate(chunks)[:n]
