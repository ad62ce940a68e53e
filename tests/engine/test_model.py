"""The decoder: parameter count, init, causality, the KV-cache path, optimizer groups and the lr schedule."""

from __future__ import annotations

import torch

from engine.config import ModelConfig
from engine.model import KVCache, Transformer, parameter_groups
from engine.schedule import lr_at
from tests.engine.train_helpers import one_torch_thread  # noqa: F401 (autouse fixture)

TINY = ModelConfig(n_layer=2, d_model=32, n_head=2, d_mlp=64, max_seq_len=64)


def test_paper_shape_has_the_studys_parameter_count() -> None:
    # 1,601,920 = the study's Qwen2 model (see the arithmetic in engine/model.py's docstring).
    model = Transformer(ModelConfig())
    assert model.num_params() == 1_601_920
    # RoPE tables are buffers derived from the config, not weights: checkpoints hold only parameters.
    assert set(model.state_dict()) == {name for name, _ in model.named_parameters()}


def test_init_is_normal_0_01_biases_zero_norms_one() -> None:
    torch.manual_seed(0)
    model = Transformer(ModelConfig())
    w = torch.cat([model.embed.weight.flatten(), model.blocks[0].mlp.up_proj.weight.flatten()])
    assert abs(w.std().item() - 0.1) < 0.002 and abs(w.mean().item()) < 0.002
    assert torch.count_nonzero(model.blocks[0].attn.q_proj.bias) == 0
    assert torch.all(model.norm.weight == 1)
    assert model.blocks[0].attn.o_proj.bias is None and model.lm_head.bias is None


def test_attention_is_causal() -> None:
    torch.manual_seed(0)
    model = Transformer(TINY).eval()
    idx = torch.randint(4, 98, (2, 12))
    changed = idx.clone()
    changed[:, 8:] = torch.randint(4, 98, (2, 4))
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-6)
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_kv_cache_path_matches_full_forward() -> None:
    torch.manual_seed(1)
    model = Transformer(TINY).eval()
    idx = torch.randint(4, 98, (3, 15))
    with torch.no_grad():
        full = model(idx)
        cache = KVCache(TINY, batch=3, max_len=20, device=torch.device("cpu"), dtype=torch.float32)
        pieces = [model(idx[:, :9], 0, cache)]  # prefill, then one token at a time
        pieces += [model(idx[:, t : t + 1], t, cache) for t in range(9, 15)]
    assert torch.allclose(full, torch.cat(pieces, dim=1), atol=1e-5)


def test_weight_decay_applies_to_matrices_only() -> None:
    model = Transformer(TINY)
    decay, no_decay = parameter_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    n_decay = sum(p.numel() for p in decay["params"])
    assert n_decay + sum(p.numel() for p in no_decay["params"]) == model.num_params()
    assert any(p is model.embed.weight for p in decay["params"])


def test_lr_warms_up_linearly_then_decays_to_zero() -> None:
    lrs = [lr_at(s, total_steps=100, warmup_steps=10, peak=1.0) for s in range(100)]
    assert lrs[0] == 0.1 and lrs[9] == 1.0
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[99] == 1.0 / 90 and lr_at(100, 100, 10, 1.0) == 0.0
    assert lr_at(0, 5, 0, 2.0) == 2.0  # no warm-up
