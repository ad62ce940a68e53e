"""Batches of similar length (issue 14): every row once per epoch, a pure function of (seed, step), cropped
to the batch's longest row, and the answer-only loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import tokenizer
from engine.batching import MEGABATCH, Batcher, row_lengths
from engine.config import ModelConfig
from engine.loss import answer_targets, next_token_loss
from engine.model import Transformer


def _rows(n: int, seed: int = 0) -> torch.Tensor:
    """uint8 [n, 40]: BOS, random characters, EOS at lengths 10..39, PAD after."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(4, tokenizer.VOCAB_SIZE, (n, 40), generator=gen, dtype=torch.uint8)
    rows[:, 0] = tokenizer.BOS
    for i, end in enumerate(torch.randint(10, 40, (n,), generator=gen).tolist()):
        rows[i, end] = tokenizer.EOS
        rows[i, end + 1 :] = tokenizer.PAD
    return rows


def test_row_lengths_count_up_to_eos() -> None:
    rows = _rows(50)
    lengths = row_lengths(rows)
    for i in range(50):
        assert lengths[i] == int((rows[i] == tokenizer.EOS).nonzero()[0, 0]) + 1


@pytest.mark.parametrize("grouped", [False, True])
def test_every_row_once_per_epoch_and_a_pure_function_of_the_step(grouped: bool) -> None:
    rows = _rows(3 * MEGABATCH * 8 + 5)
    batcher = Batcher(rows, 8, seed=3, group_by_length=grouped)
    spe = batcher.steps_per_epoch
    epoch0 = torch.cat([batcher.indices(s) for s in range(spe)])
    assert len(set(epoch0.tolist())) == spe * 8  # no row twice; the 5 left over are dropped
    fresh = Batcher(rows, 8, seed=3, group_by_length=grouped)
    for s in (0, 7, spe - 1, spe, 2 * spe + 3):  # any step, any order: same rows, same width
        assert torch.equal(fresh.indices(s), batcher.indices(s))
        assert fresh.width(s) == batcher.width(s)
    assert not torch.equal(torch.cat([batcher.indices(s) for s in range(spe, 2 * spe)]), epoch0)


def test_the_study_order_is_unchanged_only_cropped() -> None:
    """group_by_length off: the same rows per step as before batching by length (a plain permutation)."""
    rows = _rows(160)
    batcher = Batcher(rows, 16, seed=3)
    from engine.batching import epoch_seed

    perm = torch.randperm(160, generator=torch.Generator().manual_seed(epoch_seed(3, 0)))
    assert torch.equal(batcher.indices(2), perm[32:48])
    batch = batcher.batch(2)
    lengths = row_lengths(rows)[perm[32:48].numpy()]
    assert batch.shape == (16, lengths.max())
    assert torch.equal(batch, rows[perm[32:48], : lengths.max()].long())


def test_grouping_by_length_cuts_the_padding() -> None:
    rows = _rows(MEGABATCH * 16 * 2)
    plain = Batcher(rows, 16, seed=0)
    grouped = Batcher(rows, 16, seed=0, group_by_length=True)
    assert grouped.padded_fraction() < 0.05 < plain.padded_fraction()
    # widths vary from batch to batch, and the order is not short-to-long within a mega-batch
    widths = [grouped.width(s) for s in range(MEGABATCH)]
    assert len(set(widths)) > 5 and widths != sorted(widths)


def test_width_multiple_rounds_up_but_never_past_the_array() -> None:
    rows = _rows(64)
    batcher = Batcher(rows, 8, seed=1, group_by_length=True, width_multiple=8)
    for s in range(batcher.steps_per_epoch):
        w = batcher.width(s)
        assert w % 8 == 0 or w == rows.shape[1]
        assert w >= row_lengths(rows)[batcher.indices(s).numpy()].max()


def test_cropping_does_not_change_the_loss() -> None:
    """PAD targets are ignored and attention is causal: a batch's loss does not depend on its width."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_layer=2, d_model=32, n_head=2, d_mlp=64, max_seq_len=64))
    rows = _rows(8).long()
    width = int(row_lengths(rows).max())
    with torch.no_grad():
        full = next_token_loss(model, rows[:, :-1], rows[:, 1:], tokenizer.PAD, None)
        cropped = next_token_loss(model, rows[:, : width - 1], rows[:, 1:width], tokenizer.PAD, None)
    assert float(full) == pytest.approx(float(cropped), rel=1e-5)


def test_answer_targets_keep_only_the_answer_and_eos() -> None:
    text = "dist(c_0001,c_0002)=123"
    row = torch.tensor([[tokenizer.BOS, *tokenizer.encode(text), tokenizer.EOS, tokenizer.PAD]])
    inputs, targets = row[:, :-1], row[:, 1:]
    kept = answer_targets(inputs, targets, tokenizer.PAD)
    kept_tokens = [int(t) for t in kept[0] if int(t) != tokenizer.PAD]
    assert kept_tokens == [*tokenizer.encode("123"), tokenizer.EOS]
    np.testing.assert_array_equal(targets.numpy()[kept != tokenizer.PAD], kept[kept != tokenizer.PAD].numpy())
