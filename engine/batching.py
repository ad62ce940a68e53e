"""The batch of every training step, a pure function of (seed, step): resume needs no data-loader state.

Rows are token arrays padded with PAD to the longest row of the whole training set (uint8 [N, L]). A batch
is cropped to its own longest row, as Hugging Face's collators pad to the longest row of a batch: PAD
targets are ignored and attention is causal, so the loss of a batch does not depend on its width, only
its cost does.

Two orders (`train.group_by_length`, named after the Hugging Face TrainingArguments flag):
- off (the study's order): each epoch is a uniform random permutation cut into batches;
- on: the epoch's permutation is cut into mega-batches of MEGABATCH batches; each mega-batch is sorted by
  row length and cut into batches, whose order inside the mega-batch is shuffled again. A batch then holds
  rows of nearly the same length, so a mix of short (distance, 23-26 tokens) and long rows (inside, up to
  57) costs what its rows need instead of 57 tokens a row. Every row is still seen once per epoch.
Either way total_steps = epochs * (N // batch_size); the last partial batch of an epoch is dropped.

`width_multiple` rounds every batch width up (capped at L): the CUDA-graph loop captures one graph per
width, so it asks for multiples of 8 to keep the number of graphs small.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from engine.tokenizer import PAD

MEGABATCH = 64  # batches per length-sorted group: large enough that a sorted batch is near-uniform


def epoch_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for (seed, epoch, ...), stable across processes and numpy versions."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0] >> 1)


def row_lengths(tokens: np.ndarray | Tensor) -> np.ndarray:
    """int64 [N]: tokens of each row up to its last non-PAD token (rows are PAD-padded on the right)."""
    rows = tokens.cpu().numpy() if isinstance(tokens, Tensor) else np.asarray(tokens)
    used = rows != PAD
    last = rows.shape[1] - np.argmax(used[:, ::-1], axis=1)
    return np.where(used.any(axis=1), last, 1).astype(np.int64)


class Batcher:
    """Rows and width of step s: `indices(s)` (on the tokens' device), `width(s)`, `batch(s)`."""

    def __init__(
        self,
        tokens: Tensor,
        batch_size: int,
        seed: int,
        *,
        group_by_length: bool = False,
        width_multiple: int = 1,
        lengths: np.ndarray | None = None,
    ) -> None:
        self.tokens = tokens  # uint8 [N, L] on the training device
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.n_rows, self.row_len = int(tokens.shape[0]), int(tokens.shape[1])
        self.steps_per_epoch = self.n_rows // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"{self.n_rows} rows are fewer than one batch of {batch_size}")
        self.lengths = row_lengths(tokens) if lengths is None else np.asarray(lengths, dtype=np.int64)
        self.width_multiple = max(1, int(width_multiple))
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.long)
        self._order_np = np.empty(0, dtype=np.int64)
        self._widths = np.empty(0, dtype=np.int64)

    def _plan(self, epoch: int) -> None:
        """The epoch's row order (used rows only, batch after batch) and each batch's width."""
        gen = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        # Drawn on the CPU (the same order on every device), copied to the device once per epoch.
        perm = torch.randperm(self.n_rows, generator=gen).numpy()[: self.steps_per_epoch * self.batch_size]
        if self.group_by_length:
            perm = self._grouped(perm, epoch)
        batches = perm.reshape(self.steps_per_epoch, self.batch_size)
        widths = self.lengths[batches].max(axis=1)
        m = self.width_multiple
        self._widths = np.minimum(-(-widths // m) * m, self.row_len)
        self._order_np = np.ascontiguousarray(perm)
        self._order = torch.from_numpy(self._order_np).to(self.tokens.device)
        self._epoch = epoch

    def _grouped(self, perm: np.ndarray, epoch: int) -> np.ndarray:
        b = self.batch_size
        out = np.empty_like(perm)
        group = MEGABATCH * b
        for g, start in enumerate(range(0, len(perm), group)):
            rows = perm[start : start + group]
            rows = rows[np.argsort(self.lengths[rows], kind="stable")]
            n_batches = len(rows) // b
            shuffle = np.random.Generator(np.random.PCG64(epoch_seed(self.seed, epoch, g))).permutation(
                n_batches
            )
            out[start : start + len(rows)] = rows.reshape(n_batches, b)[shuffle].reshape(-1)
        return out

    def _ensure(self, epoch: int) -> None:
        if epoch != self._epoch:
            self._plan(epoch)

    def indices(self, step: int) -> Tensor:
        """Row indices [batch_size] of step `step` (on the tokens' device)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        self._ensure(epoch)
        start = k * self.batch_size
        return self._order[start : start + self.batch_size]

    def lengths_of(self, step: int) -> np.ndarray:
        """int64 [batch_size]: the token count of each row of step `step` (in the order of `indices`)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        self._ensure(epoch)
        return self.lengths[self._order_np[k * self.batch_size : (k + 1) * self.batch_size]]

    def width(self, step: int) -> int:
        """Columns of step `step`'s batch: its longest row (rounded up to width_multiple, at most L)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        self._ensure(epoch)
        return int(self._widths[k])

    def batch(self, step: int) -> Tensor:
        """int64 [batch_size, width(step)]: the rows of step `step`, cropped to the batch's width."""
        rows = self.tokens.index_select(0, self.indices(step))
        return rows[:, : self.width(step)].long()

    def padded_fraction(self, steps: int = 200) -> float:
        """Share of computed positions that are padding over the first `steps` steps (for logs, benches)."""
        steps = max(1, min(steps, self.steps_per_epoch))
        cells = used = 0
        for s in range(steps):
            idx = self.indices(s).cpu().numpy()
            cells += self.width(s) * len(idx)
            used += int(self.lengths[idx].sum())
        return 1.0 - used / cells
