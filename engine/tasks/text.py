"""Vectorised text assembly, directly in token ids: rows are built as uint8 token matrices, never as
per-row Python strings, and training rows need no separate tokenisation pass.

A *piece* is a token matrix uint8 [N, w] plus its length: an int when every row uses all w columns, or an
int64 array per row (0..w) whose columns past the length hold PAD (0). `assemble` concatenates pieces row
by row; while all rows are aligned it writes plain slices, so fixed-width prompts cost a few array copies.
Tokens of printable characters are their ASCII code minus 29 (engine/tokenizer.py), so the digit d is
token d + DIGIT_0.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from engine.tokenizer import CHAR_OFFSET, FIRST_CHAR, LAST_CHAR, PAD, encode

Piece = tuple[np.ndarray, "int | np.ndarray"]
DIGIT_0 = ord("0") + CHAR_OFFSET

# token id -> ASCII byte for turning token matrices back into text (PAD -> 0, which numpy strips)
_TOKEN_TO_BYTE = np.zeros(256, dtype=np.uint8)
_TOKEN_TO_BYTE[FIRST_CHAR + CHAR_OFFSET : LAST_CHAR + CHAR_OFFSET + 1] = np.arange(FIRST_CHAR, LAST_CHAR + 1)


def tokens_of(text: str) -> np.ndarray:
    """uint8 token ids of a piece of text (characters only)."""
    return np.array(encode(text), dtype=np.uint8)


def const_piece(text: str, n: int) -> Piece:
    """The same text in every row."""
    row = tokens_of(text)
    return np.broadcast_to(row, (n, len(row))), len(row)


def int_piece(values: np.ndarray) -> Piece:
    """Non-negative integers in decimal without leading zeros (0 is "0"); PAD past each number."""
    values = np.asarray(values, dtype=np.int64)
    if values.size and values.min() < 0:
        raise ValueError("int_piece needs non-negative integers")
    n = len(values)
    width = len(str(int(values.max()))) if n else 1
    # digits right-aligned; division of uint32 by the scalar 10 is many times faster than int64 division
    rest = values.astype(np.uint32 if width <= 9 else np.uint64)
    right = np.empty((n, width), dtype=np.uint8)
    for k in range(width):
        right[:, width - 1 - k] = rest % 10
        rest = rest // 10
    right += DIGIT_0
    n_digits = np.ones(n, dtype=np.int64)
    for k in range(1, width):
        n_digits += values >= 10**k
    if width <= 8 and sys.byteorder == "little":
        # left-align all rows at once: as a little-endian uint64, dropping the first z bytes of a row is a
        # right shift by 8z bits, and the bytes shifted in at the top are the PAD tail we want
        padded = np.zeros((n, 8), dtype=np.uint8)
        padded[:, :width] = right
        shifted = padded.view(np.uint64)[:, 0] >> (8 * (width - n_digits)).astype(np.uint64)
        return shifted.view(np.uint8).reshape(n, 8)[:, :width], n_digits
    out = np.zeros((n, width), dtype=np.uint8)
    for d in range(1, width + 1):  # one masked copy per number length
        rows = n_digits == d
        out[rows, :d] = right[rows, width - d :]
    return out, n_digits


def city_id_tokens(ids: np.ndarray) -> np.ndarray:
    """uint8 [N, 6]: the tokens of `c_` + each city ID zero-padded to 4 digits."""
    ids = np.asarray(ids, dtype=np.int64)
    out = np.empty((len(ids), 6), dtype=np.uint8)
    out[:, :2] = tokens_of("c_")
    out[:, 2:] = (ids[:, None] // np.array([1000, 100, 10, 1])) % 10 + DIGIT_0
    return out


def choice_piece(options: Sequence[str], index: np.ndarray) -> Piece:
    """options[index[i]] in row i."""
    width = max(len(o) for o in options)
    table = np.full((len(options), width), PAD, dtype=np.uint8)
    for k, option in enumerate(options):
        table[k, : len(option)] = tokens_of(option)
    lengths = np.array([len(o) for o in options], dtype=np.int64)
    if (lengths == width).all():
        return table[index], width
    return table[index], lengths[index]


def assemble(pieces: Sequence[Piece], n: int, extra: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate pieces row-wise: (uint8 [N, W + extra] PAD-padded, int64 lengths [N]), W the longest row.

    Every piece must hold PAD past each row's length (all pieces made here do).
    """
    total = np.zeros(n, dtype=np.int64)
    for _, lengths in pieces:
        total += lengths
    longest = int(total.max(initial=0))
    # room for every piece at full width, so that aligned slab writes never run past the end
    out = np.zeros((n, max(sum(m.shape[1] for m, _ in pieces), longest + extra)), dtype=np.uint8)
    offset: np.ndarray | None = None  # per-row offsets once rows are no longer aligned
    fixed = 0  # the common offset while they are
    rows = np.arange(n)[:, None]
    for matrix, lengths in pieces:
        w = matrix.shape[1]
        if w == 0 or n == 0:
            continue
        if offset is None:
            # rows still aligned: a plain slice; a ragged piece's PAD tail is overwritten by what follows
            out[:, fixed : fixed + w] = matrix
            if isinstance(lengths, int):
                fixed += lengths
            else:
                offset = fixed + lengths
        else:
            cols = offset[:, None] + np.arange(w)[None, :]
            if isinstance(lengths, int):
                out[rows, cols] = matrix
            else:
                keep = np.arange(w)[None, :] < lengths[:, None]
                out[np.broadcast_to(rows, keep.shape)[keep], cols[keep]] = matrix[keep]
            offset = offset + lengths
    return out[:, : longest + extra], total


def to_strings(tokens: np.ndarray) -> list[str]:
    """Rows of a PAD-padded token matrix (characters only) as Python strings."""
    n, width = tokens.shape
    if width == 0:
        return [""] * n
    as_bytes = np.ascontiguousarray(_TOKEN_TO_BYTE[tokens]).view(f"S{width}").ravel()  # trailing 0s stripped
    return as_bytes.astype(f"U{width}").tolist()
