"""Packing (train.packing): the same rows per step, laid end to end, with the same loss and gradients as the
unpacked batch; bins never overflow; a packed run trains and resumes exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine import tokenizer
from engine.batching import row_lengths
from engine.checkpoint import load_checkpoint
from engine.config import ModelConfig
from engine.loss import next_token_loss
from engine.model import Transformer
from engine.packing import WIDTH_FACTOR, assign_bins, pack, packed_fraction
from engine.train import run_training
from tests.engine.test_batching import _rows
from tests.engine.train_helpers import events, one_torch_thread, tiny_config, write_run  # noqa: F401


@pytest.mark.parametrize("answer_only", [False, True])
def test_packed_loss_and_gradients_equal_the_unpacked_batch(answer_only: bool) -> None:
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_layer=2, d_model=32, n_head=2, d_mlp=64, max_seq_len=64))
    rows = _rows(24, seed=5).long()
    # an "=" in every row, so the answer-only loss has targets after it
    rows[:, 4] = tokenizer.encode("=")[0]
    inputs, targets = rows[:, :-1], rows[:, 1:]
    lengths = row_lengths(rows) - 1

    def loss_and_grads(pack_lengths: np.ndarray | None) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad()
        loss = next_token_loss(
            model, inputs, targets, tokenizer.PAD, None, answer_only=answer_only, pack_lengths=pack_lengths
        )
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain_loss, plain_grads = loss_and_grads(None)
    packed_loss, packed_grads = loss_and_grads(lengths)
    assert packed_loss == pytest.approx(plain_loss, rel=1e-5)
    assert len(packed_grads) == len(plain_grads)
    for a, b in zip(packed_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    packed = pack(inputs, targets, lengths, tokenizer.PAD, max_width=64)
    assert packed.inputs.shape[0] < len(rows)  # fewer sequences than rows: the point of packing


def test_packed_rows_keep_their_tokens_positions_and_only_see_themselves() -> None:
    rows = _rows(10, seed=2).long()
    inputs, targets = rows[:, :-1], rows[:, 1:]
    lengths = row_lengths(rows) - 1
    p = pack(inputs, targets, lengths, tokenizer.PAD, max_width=200)
    assert p.inputs.shape[1] <= int(WIDTH_FACTOR * inputs.shape[1])
    used = p.inputs != tokenizer.PAD
    assert int(used.sum()) == int(lengths.sum())  # every real position once, nothing else
    starts = (p.positions == 0) & used
    assert int(starts.sum()) == len(rows)
    # every position attends to itself; no position attends across a row boundary or forward
    mask = p.attn_mask[:, 0]
    assert bool(mask.diagonal(dim1=1, dim2=2).all())
    assert not bool(mask.triu(1).any())
    for r in range(p.inputs.shape[0]):
        for i in range(p.inputs.shape[1]):
            if not used[r, i]:
                continue
            first = i - int(p.positions[r, i])
            allowed = torch.zeros(p.inputs.shape[1], dtype=torch.bool)
            allowed[first : i + 1] = True
            assert torch.equal(mask[r, i], allowed)


def test_first_fit_decreasing_respects_the_capacity_and_is_deterministic() -> None:
    lengths = np.random.default_rng(0).integers(1, 30, size=200)
    bins, offsets, n = assign_bins(lengths, 40)
    fill = np.zeros(n, dtype=np.int64)
    np.add.at(fill, bins, lengths)
    assert fill.max() <= 40 and n >= int(np.ceil(lengths.sum() / 40))
    for b in range(n):  # items of one bin do not overlap
        spans = sorted((offsets[i], offsets[i] + lengths[i]) for i in np.flatnonzero(bins == b))
        assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:], strict=False))
    again = assign_bins(lengths, 40)
    assert np.array_equal(again[0], bins) and np.array_equal(again[1], offsets)
    assert 0.0 <= packed_fraction(lengths, 16) < 0.2


def test_a_packed_run_learns_what_the_unpacked_run_learns_and_resumes(tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    plain = write_run(tmp_path / "plain", tiny_config(data_root, train={"max_steps": 12}))
    packed = write_run(tmp_path / "packed", tiny_config(data_root, train={"max_steps": 12, "packing": True}))
    assert run_training(plain) == 0
    assert run_training(packed, stop_after=5) != 0  # stopped, then resumed from step 5
    assert run_training(packed) == 0
    assert "packed" in (packed / "train.log").read_text()
    a = load_checkpoint(plain / "checkpoints" / "final.pt")["model"]
    b = load_checkpoint(packed / "checkpoints" / "final.pt")["model"]
    for k in a:  # the same batches and the same loss: the same weights, up to float rounding
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-4)
    loss = [e["loss"] for e in events(packed) if e["event"] == "step"]
    assert loss and all(np.isfinite(loss))
