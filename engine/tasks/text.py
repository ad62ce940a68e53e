"""Vectorised text assembly: rows of ASCII built as byte matrices, never as per-row Python strings.

A *piece* is a byte matrix uint8 [N, w] plus a length per row (0..w). `assemble` concatenates pieces row by
row; while every piece so far has had the same length in every row, it uses plain slices, so fixed-width
prompts cost a handful of array copies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Piece = tuple[np.ndarray, np.ndarray]  # (uint8 [N, w], int64 [N])


def const_piece(text: str, n: int) -> Piece:
    """The same ASCII text in every row."""
    row = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.broadcast_to(row, (n, len(row))), np.full(n, len(row), dtype=np.int64)


def int_piece(values: np.ndarray) -> Piece:
    """Non-negative integers in decimal without leading zeros (0 is "0")."""
    values = np.asarray(values, dtype=np.int64)
    if values.size and values.min() < 0:
        raise ValueError("int_piece needs non-negative integers")
    n = len(values)
    width = len(str(int(values.max()))) if n else 1
    powers = 10 ** np.arange(width, dtype=np.int64)  # 1, 10, 100, ...
    n_digits = 1 + (values[:, None] >= powers[None, 1:]).sum(axis=1)
    # exponent of the digit written at column j: n_digits - 1 - j (negative past the number's end)
    exponent = n_digits[:, None] - 1 - np.arange(width)[None, :]
    digits = (values[:, None] // 10 ** np.clip(exponent, 0, None)) % 10
    return (digits + ord("0")).astype(np.uint8), n_digits


def city_id_piece(ids: np.ndarray, present: np.ndarray | None = None) -> Piece:
    """`c_` + the city ID zero-padded to 4 digits; rows where `present` is False get length 0."""
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    out = np.empty((n, 6), dtype=np.uint8)
    out[:, 0] = ord("c")
    out[:, 1] = ord("_")
    out[:, 2:] = (ids[:, None] // np.array([1000, 100, 10, 1])) % 10 + ord("0")
    lengths = np.full(n, 6, dtype=np.int64)
    if present is not None:
        lengths[~present] = 0
    return out, lengths


def choice_piece(options: Sequence[str], index: np.ndarray) -> Piece:
    """options[index[i]] in row i."""
    width = max(len(o) for o in options)
    table = np.zeros((len(options), width), dtype=np.uint8)
    for k, option in enumerate(options):
        table[k, : len(option)] = np.frombuffer(option.encode("ascii"), dtype=np.uint8)
    lengths = np.array([len(o) for o in options], dtype=np.int64)
    return table[index], lengths[index]


def masked(piece: Piece, present: np.ndarray) -> Piece:
    """The piece with length 0 in rows where `present` is False."""
    matrix, lengths = piece
    return matrix, np.where(present, lengths, 0)


def assemble(pieces: Sequence[Piece], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate pieces row-wise: (uint8 [N, W] zero-padded, int64 lengths [N])."""
    total = np.zeros(n, dtype=np.int64)
    for _, lengths in pieces:
        total += lengths
    width = int(total.max(initial=0))
    out = np.zeros((n, width), dtype=np.uint8)
    offset = np.zeros(n, dtype=np.int64)
    fixed_offset: int | None = 0  # the common offset while every row is aligned
    rows = np.arange(n)[:, None]
    for matrix, lengths in pieces:
        w = matrix.shape[1]
        if w == 0 or n == 0:
            continue
        uniform = bool((lengths == w).all())
        if fixed_offset is not None and uniform:
            out[:, fixed_offset : fixed_offset + w] = matrix
            fixed_offset += w
        else:
            fixed_offset = None
            cols = offset[:, None] + np.arange(w)[None, :]
            if uniform:
                out[rows, cols] = matrix
            else:
                keep = np.arange(w)[None, :] < lengths[:, None]
                out[np.broadcast_to(rows, keep.shape)[keep], cols[keep]] = matrix[keep]
        offset += lengths
    return out, total


def to_strings(chars: np.ndarray) -> list[str]:
    """Rows of a zero-padded ASCII byte matrix as Python strings."""
    n, width = chars.shape
    if width == 0:
        return [""] * n
    as_bytes = np.ascontiguousarray(chars).view(f"S{width}").ravel()  # numpy strips the trailing zeros
    return as_bytes.astype(f"U{width}").tolist()
