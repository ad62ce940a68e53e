"""CUDA graphs compute what the eager code computes (skipped without a CUDA GPU)."""

from __future__ import annotations

import pytest
import torch

from engine import tokenizer
from engine.batching import Batcher
from engine.config import ModelConfig, TrainConfig
from engine.evaluate import decode_batch
from engine.model import Transformer
from engine.schedule import lr_at
from engine.train import TrainLoop, make_optimizer

pytestmark = pytest.mark.gpu


def _rows(n: int, length: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(4, tokenizer.VOCAB_SIZE, (n, length), generator=gen, dtype=torch.uint8)
    rows[:, 0] = tokenizer.BOS
    ends = torch.randint(length // 2, length, (n,), generator=gen)
    for i, e in enumerate(ends.tolist()):
        rows[i, e] = tokenizer.EOS
        rows[i, e + 1 :] = tokenizer.PAD
    return rows.cuda()


@pytest.mark.parametrize("group_by_length", [False, True])
def test_graphed_training_step_matches_eager(group_by_length: bool) -> None:
    """Same losses and weights, with batches of several widths (one graph captured per width)."""
    from engine.cuda_graphs import GraphedTrainLoop

    device = torch.device("cuda")
    cfg = TrainConfig(batch_size=32, epochs=10, lr=1e-3, warmup_steps=5)
    tokens = _rows(256, 40, 0)
    losses = {}
    weights = {}
    for graphed in (False, True):
        torch.manual_seed(0)
        model = Transformer(ModelConfig(n_layer=2, d_model=64, n_head=4, d_mlp=128)).to(device)
        batcher = Batcher(tokens, cfg.batch_size, seed=3, group_by_length=group_by_length, width_multiple=8)
        opt = make_optimizer(model, cfg, device, capturable=graphed)
        loop: TrainLoop | GraphedTrainLoop
        if graphed:
            schedule = lambda s: lr_at(s, 40, 5, cfg.lr)  # noqa: E731
            loop = GraphedTrainLoop(model, opt, batcher, schedule, cfg.grad_clip, tokenizer.PAD, None)
        else:
            loop = TrainLoop(model, opt, batcher, cfg, 40, tokenizer.PAD, None)
        losses[graphed] = []
        for s in range(40):
            loop.step(s)
            losses[graphed].append(loop.take_loss())
        weights[graphed] = torch.cat([p.detach().flatten() for p in model.parameters()])
    if group_by_length:
        assert len({batcher.width(s) for s in range(40)}) > 1  # several graphs were captured
    assert losses[True] == pytest.approx(losses[False], rel=1e-4, abs=1e-5)
    assert torch.allclose(weights[True], weights[False], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("amp", [None, torch.bfloat16])
def test_graphed_decode_matches_eager(amp: torch.dtype | None) -> None:
    from engine.cuda_graphs import GraphedDecoder

    device = torch.device("cuda")
    torch.manual_seed(1)
    model = Transformer(ModelConfig(n_layer=2, d_model=64, n_head=4, d_mlp=128)).to(device).eval()
    idx = torch.randint(4, tokenizer.VOCAB_SIZE, (64, 12), device=device)
    idx[:, 0] = tokenizer.BOS
    with torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
        eager = decode_batch(model, idx, 16, tokenizer.EOS, True, amp or torch.float32)
    decoder = GraphedDecoder(model, 64, 12, 16, tokenizer.EOS, amp)
    assert torch.equal(decoder.decode(idx), eager)
    assert torch.equal(decoder.decode(idx.flip(0)), eager.flip(0))  # replays reset their state
