"""The 98-token character vocabulary: 4 special tokens, then the printable ASCII characters 33..126.

A training row is `<bos>` + the characters of `prompt=answer` + `<eos>`, right-padded with `<pad>`.
Everything here works on whole arrays; nothing loops over characters in Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
FIRST_CHAR, LAST_CHAR = 33, 126  # '!' .. '~'
CHAR_OFFSET = len(SPECIAL_TOKENS) - FIRST_CHAR  # token id = code point + CHAR_OFFSET
VOCAB_SIZE = len(SPECIAL_TOKENS) + (LAST_CHAR - FIRST_CHAR + 1)  # 98
TOKENS: tuple[str, ...] = SPECIAL_TOKENS + tuple(chr(c) for c in range(FIRST_CHAR, LAST_CHAR + 1))

# Code point -> token id for the 7-bit range; anything else (space, control, non-ASCII) is UNK.
_ASCII_TO_TOKEN = np.full(128, UNK, dtype=np.uint8)
_ASCII_TO_TOKEN[FIRST_CHAR : LAST_CHAR + 1] = np.arange(FIRST_CHAR, LAST_CHAR + 1) + CHAR_OFFSET
# Token id -> character for decoding; special tokens decode to nothing.
_TOKEN_TO_CHAR: tuple[str, ...] = ("",) * len(SPECIAL_TOKENS) + TOKENS[len(SPECIAL_TOKENS) :]


def _code_points_to_tokens(code_points: np.ndarray) -> np.ndarray:
    """Map an array of Unicode code points to token ids (uint8); out-of-range code points become UNK."""
    in_range = code_points < 128
    tokens = np.full(code_points.shape, UNK, dtype=np.uint8)
    tokens[in_range] = _ASCII_TO_TOKEN[code_points[in_range]]
    return tokens


def encode(text: str) -> list[int]:
    """Token ids of the characters of `text` (no BOS/EOS); an unknown character becomes UNK."""
    code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return [int(t) for t in _code_points_to_tokens(code_points)]


def decode(ids: Iterable[int]) -> str:
    """The text of `ids`, special tokens (and ids outside the vocabulary) dropped."""
    n = len(_TOKEN_TO_CHAR)
    return "".join(_TOKEN_TO_CHAR[i] for i in (int(i) for i in ids) if 0 <= i < n)


def encode_batch(texts: Sequence[str], add_eos: bool = True) -> np.ndarray:
    """uint8 [N, L]: BOS + characters (+ EOS), right-padded with PAD to the longest row."""
    n = len(texts)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
    width = int(lengths.max(initial=0)) + 1 + int(add_eos)
    out = np.full((n, width), PAD, dtype=np.uint8)
    out[:, 0] = BOS
    total = int(lengths.sum())
    if total:
        code_points = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
        starts = np.cumsum(lengths) - lengths
        rows = np.repeat(np.arange(n), lengths)
        cols = np.arange(total) - np.repeat(starts, lengths) + 1
        out[rows, cols] = _code_points_to_tokens(code_points)
    if add_eos:
        out[np.arange(n), lengths + 1] = EOS
    return out


def vocab_dict() -> dict[str, object]:
    """The vocabulary as saved by `save_vocab`."""
    return {"tokens": list(TOKENS), "pad": PAD, "unk": UNK, "bos": BOS, "eos": EOS, "vocab_size": VOCAB_SIZE}


def save_vocab(path: Path) -> None:
    """Write the vocabulary as JSON, atomically."""
    from engine.filelock import atomic_write_bytes

    atomic_write_bytes(Path(path), (json.dumps(vocab_dict(), indent=1) + "\n").encode())
