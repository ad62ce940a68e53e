"""Reading on from a byte offset in a file that only grows, and noticing the file that did not just grow.

A reader that remembers how far it read a file (`events.jsonl`, `train.log`) takes "same inode, at least as
many bytes" to mean "appended to". That is wrong for a file rewritten in place (`cp OTHER events.jsonl`
truncates and writes into the same inode) and for one removed and created again under a reused inode number
(ext4 hands a freed number out again at once; a cache kept across processes meets that): reading on from
the offset would fold the middle of another history into the old one. So a reader keeps the last
ANCHOR_BYTES bytes it read, and reading on first checks that they are still there; when they are not, the
file is read from its start. The anchor ends at a line boundary inside an events line (time, loss, rate),
so two histories that share it share the bytes before it in practice too.
"""

from __future__ import annotations

from typing import BinaryIO

ANCHOR_BYTES = 64


def read_on(f: BinaryIO, offset: int, anchor: bytes, limit: int = -1) -> bytes | None:
    """The bytes of the open file `f` from `offset` on (at most `limit` of them; -1: to the end), or None when
    the `len(anchor)` bytes before `offset` are not `anchor`: the file was rewritten, read it from 0.
    Raises OSError as `f.seek`/`f.read` do."""
    size = len(anchor)
    if offset < size:
        return None  # (not written by `next_anchor` for this offset)
    f.seek(offset - size)
    data = f.read(-1 if limit < 0 else size + limit)
    if data[:size] != anchor:
        return None
    return data[size:]


def next_anchor(anchor: bytes, consumed: bytes) -> bytes:
    """The anchor after reading `consumed`, the bytes from the old anchor's end to the new offset."""
    if len(consumed) >= ANCHOR_BYTES:
        return consumed[-ANCHOR_BYTES:]
    return (anchor + consumed)[-ANCHOR_BYTES:]
