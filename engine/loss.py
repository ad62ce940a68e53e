"""The training objective: next-token cross-entropy, over every token or only the answer's."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.packing import pack
from engine.tokenizer import encode

ANSWER_MARK = encode("=")[0]  # the token between a prompt and its answer


def answer_targets(inputs: Tensor, targets: Tensor, pad_id: int) -> Tensor:
    """`targets` with every position up to the prompt's "=" replaced by PAD (so ignored by the loss).

    What is left is the answer and its <eos>: the loss of `train.loss = "answer"`. The prompt's city IDs are
    random, so predicting them teaches nothing about the geometry; their irreducible loss only adds gradient
    noise. A named deviation from the study (which trains on every token), used by the laptop profile."""
    after_mark = torch.cumsum(inputs == ANSWER_MARK, dim=1) > 0
    return torch.where(after_mark, targets, pad_id)


def next_token_loss(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    pad_id: int,
    amp_dtype: torch.dtype | None,
    autocast_cache: bool = True,
    answer_only: bool = False,
    pack_lengths: np.ndarray | None = None,
) -> Tensor:
    """Mean cross-entropy of every next token (padding targets ignored; with answer_only, only the answer's),
    computed in float32; the forward runs under autocast when amp_dtype is given. A CUDA-graph capture needs
    autocast_cache=False. With pack_lengths (int [B], the positions each row uses) the rows are packed first
    (engine/packing.py): the same loss at a lower cost."""
    if answer_only:
        targets = answer_targets(inputs, targets, pad_id)
    packed_args = {}
    if pack_lengths is not None:
        max_width = int(model.get_buffer("rope_cos").shape[0])  # the model's max_seq_len
        packed = pack(inputs, targets, pack_lengths, pad_id, max_width=max_width)
        inputs, targets = packed.inputs, packed.targets
        packed_args = {"positions": packed.positions, "attn_mask": packed.attn_mask}
    with torch.autocast(
        inputs.device.type,
        dtype=amp_dtype or torch.float32,
        enabled=bool(amp_dtype),
        cache_enabled=autocast_cache,
    ):
        logits = model(inputs, **packed_args)
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_id
    )
