"""The Task base class: sampling (vectorised, with the split and class balance), formatting, scoring.

A task module subclasses `Task`, sets its constants and implements `values` (the answer of each query from
the city coordinates) and, through `head`/`separator`, the text of its prompt. Queries are int32 matrices of
city indices, one row per query, -1 in unused positions (for tasks with a variable number of cities).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np

from engine.tasks import text
from engine.tasks.split import TEST_MODULUS, is_test
from engine.tokenizer import BOS, EOS
from engine.world import World

SETS = ("standard", "atlantis")
Metric = Literal["abs_error", "accuracy"]
_LEADING_INT = re.compile(r"\d+")
_MAX_BATCH = 1 << 21


class Task:
    name: ClassVar[str]
    short: ClassVar[str]
    metric: ClassVar[Metric]
    failure_value: ClassVar[float]
    max_new_tokens: ClassVar[int] = 20
    head: ClassVar[str]  # prompt text before the first city: "dist("
    min_cities: ClassVar[int]
    max_cities: ClassVar[int]
    labels: ClassVar[tuple[str, ...]] = ()  # answer spellings of accuracy tasks (value = index)
    balanced: ClassVar[bool] = False  # exactly half of every set TRUE (labels must be ("FALSE", "TRUE"))

    # ---- the task's own geometry and text ----------------------------------------------------------
    def values(self, xy: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """int64 answer per query: the number, or the label index for accuracy tasks."""
        raise NotImplementedError

    def separator(self, position: int) -> str:
        """The text between city position-1 and city `position` (position >= 1)."""
        return ","

    # ---- sampling ----------------------------------------------------------------------------------
    def candidates(self, world: World, count: int, set_name: str, rng: np.random.Generator) -> np.ndarray:
        """Random queries, possibly repeating a city within a row (filtered by `sample`)."""
        m = self.max_cities
        rows = np.arange(count)
        if self.min_cities == m:
            k = np.full(count, m)
        else:
            k = rng.integers(self.min_cities, m + 1, size=count)
        if set_name == "standard":
            queries = rng.integers(0, world.n_real, size=(count, m))
        else:
            # one Atlantis city at a uniformly random used position, the other positions from all cities
            queries = rng.integers(0, len(world), size=(count, m))
            position = rng.integers(0, k)
            queries[rows, position] = world.n_real + rng.integers(0, world.n_atlantis, size=count)
        queries[np.arange(m)[None, :] >= k[:, None]] = -1
        return queries.astype(np.int32)

    def sample(
        self,
        world: World,
        n: int,
        set_name: str,
        rng: np.random.Generator,
        split: str | None = None,
    ) -> np.ndarray:
        """n queries with distinct cities, from `split` ("train", "test" or None for either).

        Balanced tasks return TRUE/FALSE in pairs (random order within each pair), so every even-length
        prefix is exactly balanced and the classes are interleaved.
        """
        if set_name not in SETS:
            raise ValueError(f"unknown set '{set_name}'; allowed: {', '.join(SETS)}")
        n_classes = 2 if self.balanced else 1
        need = [(n + 1) // 2] * 2 if self.balanced else [n]
        found = [[np.empty((0, self.max_cities), dtype=np.int32)] for _ in range(n_classes)]
        have = [0] * n_classes
        drawn = 0
        batch = int(n * n_classes * (TEST_MODULUS if split == "test" else 1) * 1.1) + 256
        while any(h < w for h, w in zip(have, need, strict=True)):
            q = self.candidates(world, min(batch, _MAX_BATCH), set_name, rng)
            drawn += len(q)
            q = q[_distinct(q)]
            if split is not None:
                q = q[is_test(_ids(world, q)) == (split == "test")]
            if self.balanced:
                label = self.values(world.xy, q)
                groups = [q[label == 1], q[label == 0]]
            else:
                groups = [q]
            for c, group in enumerate(groups):
                take = group[: need[c] - have[c]]
                found[c].append(take)
                have[c] += len(take)
            # next batch: enough for the scarcest class at the rates seen so far, with a margin
            missing = [(w - h) * drawn / max(h, 1) for h, w in zip(have, need, strict=True) if h < w]
            batch = 256 + int(1.2 * max(missing, default=0))
        if not self.balanced:
            return np.concatenate(found[0])[:n]
        true_rows, false_rows = np.concatenate(found[0]), np.concatenate(found[1])
        true_first = rng.integers(0, 2, size=len(true_rows)).astype(bool)
        pairs = np.empty((len(true_rows), 2, self.max_cities), dtype=np.int32)
        pairs[:, 0] = np.where(true_first[:, None], true_rows, false_rows)
        pairs[:, 1] = np.where(true_first[:, None], false_rows, true_rows)
        return pairs.reshape(-1, self.max_cities)[:n]

    # ---- text --------------------------------------------------------------------------------------
    # Rows with the same number of cities have the same prompt layout, so each such group is assembled with
    # plain slices (only the answer's length varies) and the groups are then put back in row order.
    def _groups(self, queries: np.ndarray) -> list[tuple[np.ndarray | slice, int]]:
        if self.min_cities == self.max_cities:
            return [(slice(None), self.max_cities)]
        count = (queries >= 0).sum(axis=1)
        return [(np.flatnonzero(count == c), c) for c in range(self.min_cities, self.max_cities + 1)]

    def _prompt_pieces(self, world: World, queries: np.ndarray, count: int) -> list[text.Piece]:
        """Pieces of the prompt of rows that all use their first `count` cities."""
        n = len(queries)
        id_tokens = _id_token_table(world)
        pieces = [text.const_piece(self.head, n)]
        for j in range(count):
            if j:
                pieces.append(text.const_piece(self.separator(j), n))
            pieces.append((id_tokens[queries[:, j]], 6))
        pieces.append(text.const_piece(")", n))
        return pieces

    def _answer_piece(self, values: np.ndarray) -> text.Piece:
        if self.labels:
            return text.choice_piece(self.labels, values)
        return text.int_piece(values)

    def _rows(self, world: World, queries: np.ndarray, training: bool) -> tuple[np.ndarray, np.ndarray]:
        """PAD-padded token rows and their lengths: the prompt, or <bos>prompt=answer (+ a free column)."""
        n = len(queries)
        values = self.values(world.xy, queries) if training else None
        built = []
        groups = self._groups(queries)
        for rows, count in groups:
            q = queries[rows]
            pieces: list[text.Piece] = [(np.full((len(q), 1), BOS, dtype=np.uint8), 1)] if training else []
            pieces += self._prompt_pieces(world, q, count)
            if values is not None:
                pieces += [text.const_piece("=", len(q)), self._answer_piece(values[rows])]
            built.append(text.assemble(pieces, len(q), extra=int(training)))
        if len(built) == 1:
            return built[0]
        out = np.zeros((n, max(b.shape[1] for b, _ in built)), dtype=np.uint8)
        lengths = np.zeros(n, dtype=np.int64)
        for (rows, _), (block, block_lengths) in zip(groups, built, strict=True):
            out[rows, : block.shape[1]] = block
            lengths[rows] = block_lengths
        return out, lengths

    def format(self, world: World, queries: np.ndarray) -> tuple[list[str], list[str]]:
        """(prompts without "=", answers) as strings."""
        prompts, _ = self._rows(world, queries, training=False)
        answers, _ = text.assemble([self._answer_piece(self.values(world.xy, queries))], len(queries))
        return text.to_strings(prompts), text.to_strings(answers)

    def tokens(self, world: World, queries: np.ndarray) -> np.ndarray:
        """Token rows <bos>prompt=answer<eos>, PAD-padded: uint8 [N, L]."""
        rows, lengths = self._rows(world, queries, training=True)
        rows[np.arange(len(queries)), lengths] = EOS
        return rows[:, : int(lengths.max(initial=0)) + 1]

    # ---- scoring -----------------------------------------------------------------------------------
    def parse(self, completion: str) -> int | None:
        """The answer a completion states (number, or label index), None if unparsable."""
        s = completion.replace(" ", "").strip()
        if self.labels:
            s = s.upper()
            return self.labels.index(s) if s in self.labels else None
        # like the original: the leading run of digits counts, anything after it is ignored
        match = _LEADING_INT.match(s)
        return int(match.group()) if match else None

    def score(self, completions: Sequence[str], answers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(value per example, parse_failed per example): |pred - true| or 1.0/0.0; failure value if
        unparsable.

        An absolute error is capped at the failure value: an answer that misses by more than the worst
        meaningful error (a 30-digit number, say) is no better than no answer, and uncapped it would let one
        runaway example dominate a set's mean and the heatmap normalisation built on it."""
        if len(completions) != len(answers):
            raise ValueError(f"{len(completions)} completions for {len(answers)} answers")
        values = np.empty(len(answers), dtype=np.float64)
        failed = np.zeros(len(answers), dtype=bool)
        for i, (completion, answer) in enumerate(zip(completions, answers, strict=True)):
            predicted, truth = self.parse(completion), self.parse(answer)
            if truth is None:
                raise ValueError(f"answer {answer!r} is not a valid {self.name} answer")
            if predicted is None:
                failed[i] = True
                values[i] = self.failure_value
            elif self.metric == "accuracy":
                values[i] = float(predicted == truth)
            else:
                values[i] = min(float(abs(predicted - truth)), self.failure_value)
        return values, failed


_ID_TOKEN_CACHE: dict[int, tuple[World, np.ndarray]] = {}


def _id_token_table(world: World) -> np.ndarray:
    """uint8 [n_cities, 6]: the tokens of every city's prompt spelling, made once per world."""
    cached = _ID_TOKEN_CACHE.get(id(world))
    if cached is None or cached[0] is not world:
        cached = (world, text.city_id_tokens(world.city_id))
        _ID_TOKEN_CACHE[id(world)] = cached
    return cached[1]


def _ids(world: World, queries: np.ndarray) -> np.ndarray:
    """City IDs of a query matrix, -1 kept for unused positions."""
    return np.where(queries >= 0, world.city_id[np.maximum(queries, 0)], -1)


def _distinct(queries: np.ndarray) -> np.ndarray:
    """Boolean per row: are the used cities of the row all different?"""
    # pairwise comparisons: at most 15 for 6 cities, cheaper than sorting every row
    repeated = np.zeros(len(queries), dtype=bool)
    m = queries.shape[1]
    for j in range(1, m):
        for i in range(j):
            repeated |= (queries[:, i] == queries[:, j]) & (queries[:, j] >= 0)
    return ~repeated


def query_city_ids(world: World, queries: np.ndarray) -> np.ndarray:
    """City IDs per query (-1 for unused positions)."""
    return _ids(world, queries)
