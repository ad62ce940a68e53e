"""CUDA-graph versions of the training step and of the greedy decode step.

The study's model is tiny (1.6M parameters, batch 128, ~56 tokens): on a GPU its step time is the time Python
takes to launch a few hundred small kernels, not arithmetic. Capturing the whole step once and replaying it
leaves the host one graph launch plus two tiny copies per step.

Training (`GraphedTrainLoop`): batch gather by index, forward under bf16 autocast, loss, backward, gradient
clipping, fused AdamW with capturable state and a device-tensor learning rate, and the running loss sum: one
graph. Per step the host copies the step's slice of the epoch permutation into a static index buffer and the
step's learning rate into the optimizer's lr tensors, then replays. The numerics are those of the eager loop
(same kernels, same order); a checkpoint saved from either loop resumes in the other.

Decoding (`GraphedDecoder`): the prompt is prefilled eagerly into a static KV cache; one decode step (next
token, argmax, finished flags, output column, position + 1) is captured per (batch, prompt length, token
limit) and replayed; the host checks "all rows finished" only every few steps.

Capture needs warm-up iterations, which would move the weights and the optimizer state: they are saved before
and restored in place after, so capture changes nothing a resumed run could notice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from engine.batching import Batcher
from engine.loss import next_token_loss
from engine.model import KVCache, Transformer

WARMUP_ITERS = 3
FINISHED_CHECK_EVERY = 4  # decode steps between host reads of "every row finished"


def capturable_adamw(
    groups: list[dict], lr: float, betas: tuple[float, float], device: torch.device
) -> torch.optim.AdamW:
    """Fused AdamW whose state and learning rate live on the device, so `step()` can be captured."""
    return torch.optim.AdamW(
        groups, lr=torch.tensor(lr, device=device), betas=betas, fused=True, capturable=True
    )


def _lr_tensors(optimizer: torch.optim.Optimizer, device: torch.device) -> list[Tensor]:
    """Each group's lr as a device tensor (a state dict loaded from an eager run holds floats)."""
    tensors = []
    for group in optimizer.param_groups:
        lr = group["lr"]
        if not isinstance(lr, Tensor) or lr.device != device:
            group["lr"] = lr = torch.tensor(float(lr), device=device)
        tensors.append(lr)
    return tensors


class _StateSnapshot:
    """Parameters and optimizer state copied aside, put back in place (same storage) after warm-up."""

    def __init__(self, params: Sequence[Tensor], optimizer: torch.optim.Optimizer) -> None:
        self.params = params
        self.optimizer = optimizer
        self.param_copies = [p.detach().clone() for p in params]
        self.had_state = any(optimizer.state.get(p) for p in params)
        self.state_copies = {
            id(p): {k: v.clone() for k, v in optimizer.state[p].items() if isinstance(v, Tensor)}
            for p in params
            if optimizer.state.get(p)
        }

    @torch.no_grad()
    def restore(self) -> None:
        for p, saved in zip(self.params, self.param_copies, strict=True):
            p.copy_(saved)
        for p in self.params:
            state = self.optimizer.state.get(p)
            if not state:
                continue
            saved_state = self.state_copies.get(id(p))
            for k, v in state.items():
                if not isinstance(v, Tensor):
                    continue
                if saved_state is not None and k in saved_state:
                    v.copy_(saved_state[k])
                else:  # state created by the warm-up itself: back to a fresh optimizer's zeros
                    v.zero_()


class GraphedTrainLoop:
    """Same interface as engine.train.TrainLoop (`step(s)`, `take_loss()`), one CUDA graph replay per step.

    Batches differ in width (engine/batching.py crops each to its longest row, rounded up to a multiple of
    8 for this loop), so one graph is captured per width, the first time a batch of that width comes; the
    graphs share the parameters and the optimizer state and differ only in their activations.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batcher: Batcher,
        lr_at: Callable[[int], float],
        grad_clip: float,
        pad_id: int,
        amp_dtype: torch.dtype | None,
        compile_loss: bool = False,
        answer_only: bool = False,
    ) -> None:
        tokens = batcher.tokens
        self.answer_only = answer_only
        if tokens.device.type != "cuda":
            raise ValueError("CUDA graphs need the token array on a CUDA device")
        self.model, self.optimizer = model, optimizer
        self.batcher, self.lr_at = batcher, lr_at
        self.tokens, self.pad_id, self.amp_dtype, self.grad_clip = tokens, pad_id, amp_dtype, grad_clip
        self.device = tokens.device
        self.params = [p for p in model.parameters() if p.requires_grad]
        # torch.compile fuses the forward's small kernels; the graph then replays the fused ones.
        self.loss_fn = torch.compile(self._loss, dynamic=False) if compile_loss else self._loss
        self.idx = torch.zeros(batcher.batch_size, dtype=torch.long, device=self.device)
        self.loss_sum = torch.zeros((), device=self.device)
        self.loss_count = 0
        self.lrs = _lr_tensors(optimizer, self.device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}

    def _loss(self, inputs: Tensor, targets: Tensor) -> Tensor:
        return next_token_loss(
            self.model, inputs, targets, self.pad_id, self.amp_dtype, False, answer_only=self.answer_only
        )

    def _body(self, width: int) -> None:
        rows = self.tokens.index_select(0, self.idx)[:, :width].long()
        loss = self.loss_fn(rows[:, :-1], rows[:, 1:])
        loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        self.optimizer.step()
        self.loss_sum += loss.detach()

    def _capture(self, width: int) -> torch.cuda.CUDAGraph:
        """Capture the step for batches of `width` columns; self.idx already holds a real batch."""
        snapshot = _StateSnapshot(self.params, self.optimizer)
        loss_before = self.loss_sum.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_ITERS):
                self.optimizer.zero_grad(set_to_none=True)
                self._body(width)
        torch.cuda.current_stream().wait_stream(side)
        # Gradients must be unallocated at capture: backward then writes (not adds) them on every replay.
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._body(width)
        torch.cuda.synchronize()
        snapshot.restore()
        self.loss_sum.copy_(loss_before)
        return graph

    def step(self, step: int) -> None:
        self.idx.copy_(self.batcher.indices(step), non_blocking=True)
        width = self.batcher.width(step)
        lr = self.lr_at(step)
        for t in self.lrs:
            t.fill_(lr)
        graph = self.graphs.get(width)
        if graph is None:
            graph = self.graphs[width] = self._capture(width)
        graph.replay()
        self.loss_count += 1

    def take_loss(self) -> float:
        if self.loss_count == 0:
            return float("nan")
        value = self.loss_sum.item() / self.loss_count
        self.loss_sum.zero_()
        self.loss_count = 0
        return value


class GraphedDecoder:
    """Greedy decoding of rectangular prompt batches [batch, prompt_len], one captured step per token."""

    def __init__(
        self,
        model: Transformer,
        batch: int,
        prompt_len: int,
        max_new_tokens: int,
        eos_id: int,
        amp_dtype: torch.dtype | None,
    ) -> None:
        device = next(model.parameters()).device
        self.model, self.batch, self.prompt_len = model, batch, prompt_len
        self.max_new, self.eos_id, self.amp_dtype = max_new_tokens, eos_id, amp_dtype
        self.cache = KVCache(
            model.cfg, batch, prompt_len + max_new_tokens, device, amp_dtype or torch.float32
        )
        self.tok = torch.zeros(batch, 1, dtype=torch.long, device=device)
        self.pos = torch.zeros((), dtype=torch.long, device=device)  # absolute position of self.tok
        self.col = torch.zeros(1, dtype=torch.long, device=device)  # output column of the next token
        self.out = torch.full((batch, max_new_tokens), eos_id, dtype=torch.long, device=device)
        self.finished = torch.zeros(batch, dtype=torch.bool, device=device)
        self.graph = self._capture()

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            "cuda", dtype=self.amp_dtype or torch.float32, enabled=bool(self.amp_dtype), cache_enabled=False
        )

    def _emit(self, logits: Tensor) -> None:
        nxt = torch.where(self.finished, self.eos_id, logits.argmax(-1))
        self.out.index_copy_(1, self.col, nxt[:, None])
        self.finished |= nxt == self.eos_id
        self.tok.copy_(nxt[:, None])
        self.col += 1

    def _step(self) -> None:
        with self._autocast():
            logits = self.model(self.tok, self.pos, self.cache)[:, -1]
        self._emit(logits)
        self.pos += 1

    @torch.no_grad()
    def _capture(self) -> torch.cuda.CUDAGraph:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_ITERS):
                self.pos.fill_(self.prompt_len)
                self.col.fill_(1)
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        torch.cuda.synchronize()
        return graph

    @torch.no_grad()
    def decode(self, idx: Tensor) -> Tensor:
        """Greedy continuation [batch, max_new_tokens] of idx [batch, prompt_len] (EOS-filled after EOS)."""
        if tuple(idx.shape) != (self.batch, self.prompt_len):
            raise ValueError(
                f"batch of shape {tuple(idx.shape)}; this decoder takes {self.batch, self.prompt_len}"
            )
        self.out.fill_(self.eos_id)
        self.finished.zero_()
        self.col.zero_()
        with self._autocast():
            logits = self.model(idx, 0, self.cache)[:, -1]
        self._emit(logits)
        self.pos.fill_(self.prompt_len)
        for i in range(1, self.max_new):
            if i % FINISHED_CHECK_EVERY == 0 and bool(self.finished.all()):
                break
            self.graph.replay()
        return self.out.clone()
