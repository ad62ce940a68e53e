"""Packing: a step's rows laid end to end in fewer, fuller sequences, with attention kept inside each row.

`train.packing` (the name of TRL's SFTConfig option) takes the very rows of a step that the shuffled order
gives and packs them first-fit-decreasing into sequences no wider than the batch's own longest row. Each row
keeps its own positions (RoPE restarts at 0) and attends only to its own earlier tokens (a block-diagonal
causal mask), so every logit, and therefore the loss and its gradient, equals the unpacked batch's up to float
rounding: packing changes the cost of a step, never what it learns. The seven-task mix (rows of 23-57 tokens,
mean ~36) packs 64 rows of 56 positions into ~29 sequences of 84: 31% fewer positions to compute.

Unlike `group_by_length`, batches keep their task mix: grouping rows by length makes every batch one task,
and that was measured to slow learning several-fold (README "Reference results").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

WIDTH_FACTOR = 1.5  # packed width / batch width: 1.0, 1.5, 2, 3 gave 1.2, 1.3, 1.25, 1.1x steps/s (4x64, CPU)
SEGMENT_PAD = -1  # segment id of packing's padding: pads attend to each other, so no query row is all-masked


@dataclass(frozen=True)
class Packed:
    """One packed step. R sequences of W positions (W <= the unpacked batch's width - 1):

    inputs, targets  int64 [R, W]  (targets PAD where ignored: padding, and the prompt with loss = "answer")
    positions        int64 [R, W]  each row's own positions, 0 at its first token
    attn_mask        bool [R, 1, W, W]  True where a query may attend to a key (same row, not later)
    """

    inputs: Tensor
    targets: Tensor
    positions: Tensor
    attn_mask: Tensor


def assign_bins(lengths: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray, int]:
    """First-fit decreasing: (bin of each item, offset of each item in its bin, number of bins).

    lengths int [N], each <= capacity. Deterministic: ties keep their input order (a stable sort)."""
    order = np.argsort(-lengths, kind="stable")
    bins = np.empty(len(lengths), dtype=np.int64)
    offsets = np.empty(len(lengths), dtype=np.int64)
    fill: list[int] = []
    for i in order:
        n = int(lengths[i])
        b = next((k for k, used in enumerate(fill) if used + n <= capacity), len(fill))
        if b == len(fill):
            fill.append(0)
        bins[i], offsets[i] = b, fill[b]
        fill[b] += n
    return bins, offsets, len(fill)


def pack(inputs: Tensor, targets: Tensor, lengths: np.ndarray, pad_id: int, max_width: int) -> Packed:
    """Pack a batch of next-token pairs into sequences of at most WIDTH_FACTOR * T positions (and at most
    max_width, the model's max_seq_len; never less than T).

    inputs, targets: int64 [B, T] (a row's tokens [:-1] and [1:], right-padded with pad_id);
    lengths: int [B], the positions each row uses (its token count - 1, so <= T).
    """
    b, t = inputs.shape
    lengths = np.minimum(np.asarray(lengths, dtype=np.int64), t)
    capacity = max(t, min(max_width, int(WIDTH_FACTOR * t)))
    bins, offsets, n_bins = assign_bins(lengths, capacity)
    width = int(max(offsets[k] + lengths[k] for k in range(b))) if b else 0
    # Every used position of the unpacked batch, and where it goes.
    rows = np.repeat(np.arange(b), lengths)
    cols = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    dest_rows = torch.from_numpy(bins[rows])
    dest_cols = torch.from_numpy(offsets[rows] + cols)
    src_rows, src_cols = torch.from_numpy(rows), torch.from_numpy(cols)
    device = inputs.device
    dest_rows, dest_cols = dest_rows.to(device), dest_cols.to(device)
    src_rows, src_cols = src_rows.to(device), src_cols.to(device)

    shape = (n_bins, width)
    packed_inputs = torch.full(shape, pad_id, dtype=inputs.dtype, device=device)
    packed_targets = torch.full(shape, pad_id, dtype=targets.dtype, device=device)
    positions = torch.zeros(shape, dtype=torch.long, device=device)
    segments = torch.full(shape, SEGMENT_PAD, dtype=torch.long, device=device)
    packed_inputs[dest_rows, dest_cols] = inputs[src_rows, src_cols]
    packed_targets[dest_rows, dest_cols] = targets[src_rows, src_cols]
    positions[dest_rows, dest_cols] = src_cols
    segments[dest_rows, dest_cols] = src_rows
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
    same_row = segments[:, :, None] == segments[:, None, :]
    return Packed(packed_inputs, packed_targets, positions, (same_row & causal)[:, None])


def packed_fraction(lengths: np.ndarray, batch_size: int, batches: int = 200) -> float:
    """Share of computed positions that are padding when consecutive `batch_size` rows of `lengths` (token
    counts) are packed, over the first `batches` batches (for logs and benches)."""
    cells = used = 0
    for k in range(min(batches, len(lengths) // batch_size)):
        n = np.asarray(lengths[k * batch_size : (k + 1) * batch_size], dtype=np.int64) - 1
        bins, offsets, n_bins = assign_bins(n, int(WIDTH_FACTOR * n.max()))
        cells += n_bins * int((offsets + n).max())
        used += int(n.sum())
    return 1.0 - used / cells if cells else 0.0
