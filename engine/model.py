"""The Qwen2-like decoder of the study (STUDY.md "Model and training"), nanoGPT-sized.

Token embedding -> n_layer x [RMSNorm -> attention (q/k/v with bias, o without, RoPE on q and k, causal SDPA)
-> residual, RMSNorm -> SwiGLU MLP (no bias) -> residual] -> RMSNorm -> untied lm head (no bias).

Parameter count at the paper shape (vocab 98, 6 x 128, 4 heads, MLP 512): 1,601,920, exactly the figure of
the study's model: per layer q/k/v 3 x (128*128 + 128) + o 128*128 + MLP 3 x 128*512 + two norms 2 x 128
= 262,784; x 6 = 1,576,704; plus embedding and head 2 x 98*128 = 25,088 and the final norm 128.

Decoding uses a `KVCache` of preallocated tensors [B, H, max_len, Dh] per layer. Positions are passed as a
tensor and written with `index_copy_`, and attention always spans the whole cache under a mask, so every
decode step has the same shapes (what a CUDA-graph capture of the step needs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # Normalise in float32 (as Qwen2 does) so bf16 autocast does not lose the variance.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[Tensor, Tensor]:
    """cos and sin tables [max_len, head_dim] in the rotate-half layout of Qwen2/Llama."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().float(), emb.sin().float()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x [B, H, T, Dh]; cos, sin [T, Dh] (or [B, 1, T, Dh]: positions of their own per row)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class KVCache:
    """Static per-layer key/value buffers [B, H, max_len, Dh] for batched greedy decoding."""

    def __init__(
        self, cfg: ModelConfig, batch: int, max_len: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        if max_len > cfg.max_seq_len:
            raise ValueError(f"cache length {max_len} exceeds model.max_seq_len {cfg.max_seq_len}")
        shape = (batch, cfg.n_head, max_len, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.max_len = max_len
        self.key_pos = torch.arange(max_len, device=device)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=True)
        self.k_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=True)
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=True)
        self.o_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        cache: tuple[Tensor, Tensor] | None = None,
        pos: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        b, t, c = x.shape
        q, k, v = (
            proj(x).view(b, t, self.n_head, self.head_dim).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is None and mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif cache is None:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # packed rows (engine/packing.py)
        else:
            assert pos is not None and mask is not None
            k_cache, v_cache = cache
            k_cache.index_copy_(2, pos, k.to(k_cache.dtype))
            v_cache.index_copy_(2, pos, v.to(v_cache.dtype))
            y = F.scaled_dot_product_attention(q, k_cache.to(q.dtype), v_cache.to(q.dtype), attn_mask=mask)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.down_proj = nn.Linear(cfg.d_mlp, cfg.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        cache: tuple[Tensor, Tensor] | None = None,
        pos: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, pos, mask)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        # Not persistent: derived from the config, so checkpoints hold only learned weights.
        self.rope_cos: Tensor
        self.rope_sin: Tensor
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight matrix (embedding, projections, head) ~ N(0, init_std^2); biases 0; norms 1."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=self.cfg.init_std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        idx: Tensor,
        start_pos: int | Tensor | None = None,
        cache: KVCache | None = None,
        positions: Tensor | None = None,
        attn_mask: Tensor | None = None,
    ) -> Tensor:
        """Logits [B, T, V] for tokens idx [B, T].

        Without a cache: causal attention over idx (training, full recomputation), or, for packed rows
        (engine/packing.py), positions int64 [B, T] and attn_mask bool [B, 1, T, T]. With a cache: idx holds
        the tokens at positions start_pos .. start_pos+T-1; their keys and values are written into the cache
        and attention spans the cached positions <= each query's own.
        """
        t = idx.shape[1]
        x = self.embed(idx)
        if cache is None:
            if t > self.cfg.max_seq_len:
                raise ValueError(f"sequence of {t} tokens exceeds model.max_seq_len {self.cfg.max_seq_len}")
            if positions is None:
                cos, sin = self.rope_cos[:t], self.rope_sin[:t]
            else:
                cos, sin = self.rope_cos[positions][:, None], self.rope_sin[positions][:, None]
            for block in self.blocks:
                x = block(x, cos, sin, mask=attn_mask)
        else:
            if start_pos is None:
                raise ValueError("start_pos is required with a cache")
            offset = torch.as_tensor(start_pos, device=idx.device)
            pos = offset + torch.arange(t, device=idx.device)
            cos, sin = self.rope_cos[pos], self.rope_sin[pos]
            mask = cache.key_pos[None, :] <= pos[:, None]  # [T, max_len]: True = may attend
            for block, k, v in zip(self.blocks, cache.k, cache.v, strict=True):
                x = block(x, cos, sin, (k, v), pos, mask)
        return self.lm_head(self.norm(x))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay every matrix (embedding, projections, head); not norms or biases (as HF)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
