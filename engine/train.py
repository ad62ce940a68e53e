"""Training of one run directory: pretraining or fine-tuning, with checkpoints, resume and SIGTERM handling.

Built to run on a GPU without host round trips (a later step captures the step in CUDA graphs):
- the whole token array [N, L] (every row padded to the set's fixed length L) is moved to the device once;
- the batch of step s (its rows and its width) is a pure function of (seed, s) (engine/batching.py), so
  resume needs no data state;
- batches are gathered on the device by index; the loss is accumulated on the device and read when logging;
- the learning rate is a pure function of the step (nanoGPT's get_lr), set on the param groups each step.
The last partial batch of an epoch is dropped: total_steps = epochs * (N // batch_size), capped by max_steps.
"""

from __future__ import annotations

import math
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

import engine
from engine.batching import Batcher
from engine.checkpoint import (
    CHECKPOINT_DIR,
    FINAL_NAME,
    CheckpointError,
    check_model_config,
    latest_checkpoint,
    load_checkpoint,
    load_checkpoint_digest,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
    step_name,
)
from engine.config import ConfigError, RunConfig, TrainConfig, parse_config, read_raw
from engine.device import (
    COMPILE_MODE,
    describe_device,
    resolve_amp_dtype,
    resolve_device,
    should_capture,
    should_compile,
    versions,
)
from engine.loss import next_token_loss
from engine.model import Transformer, parameter_groups
from engine.packing import packed_fraction
from engine.runlog import EVENTS_NAME, RunLog, log_only
from engine.schedule import lr_at, total_steps_for
from engine.stopping import StopFlag, stop_on_signals
from engine.world import world_mismatch

if TYPE_CHECKING:
    from engine.cuda_graphs import GraphedTrainLoop

GRAPH_WIDTH_MULTIPLE = 8  # graphed batches are 8, 16, ... columns wide: one captured graph per width


# ---------------------------------------------------------------------------------------------------------
# The loop


class TrainLoop:
    """One optimizer step at a time; the loss stays on the device until `take_loss`.

    The loss function (forward, float32 cross-entropy with PAD targets ignored) is what torch.compile wraps
    when `compile_mode` is given ("default", "reduce-overhead" = CUDA graphs, ...); the optimizer stays eager.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batcher: Batcher,
        cfg: TrainConfig,
        total_steps: int,
        pad_id: int,
        amp_dtype: torch.dtype | None,
        compile_mode: str | None = None,
        on_batch: Callable[[int, Tensor], None] | None = None,
    ) -> None:
        self.model, self.optimizer, self.batcher = model, optimizer, batcher
        self.cfg, self.total_steps, self.pad_id, self.amp_dtype = cfg, total_steps, pad_id, amp_dtype
        self.on_batch = on_batch
        self.device = batcher.tokens.device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_count = 0
        self.compile_mode = compile_mode
        self.loss_fn: Callable[[Tensor, Tensor], Tensor] = self._loss
        if compile_mode is not None:
            self.loss_fn = torch.compile(self._loss, mode=compile_mode)  # type: ignore[assignment]

    def _loss(self, inputs: Tensor, targets: Tensor, pack_lengths: np.ndarray | None = None) -> Tensor:
        answer_only = self.cfg.loss == "answer"
        return next_token_loss(
            self.model, inputs, targets, self.pad_id, self.amp_dtype, answer_only=answer_only,
            pack_lengths=pack_lengths,
        )  # fmt: skip

    def step(self, step: int) -> None:
        lr = lr_at(step, self.total_steps, self.cfg.warmup_steps, self.cfg.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        rows = self.batcher.batch(step)
        if self.on_batch is not None:
            self.on_batch(step, rows)
        if self.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        if self.cfg.packing:
            # packed outside torch.compile: the packed shapes change every step
            loss = self._loss(rows[:, :-1], rows[:, 1:], self.batcher.lengths_of(step) - 1)
        else:
            loss = self.loss_fn(rows[:, :-1], rows[:, 1:])
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._loss_sum += loss.detach()
        self._loss_count += 1

    def take_loss(self) -> float:
        """Mean loss since the last call (one device sync)."""
        if self._loss_count == 0:
            return float("nan")
        value = self._loss_sum.item() / self._loss_count
        self._loss_sum.zero_()
        self._loss_count = 0
        return value


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, device: torch.device, capturable: bool = False
) -> torch.optim.AdamW:
    if capturable:  # state and lr on the device, so a CUDA graph can capture step()
        from engine.cuda_graphs import capturable_adamw

        return capturable_adamw(parameter_groups(model, cfg.weight_decay), cfg.lr, cfg.betas, device)
    return torch.optim.AdamW(
        parameter_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=cfg.betas,
        fused=device.type == "cuda",
    )


# ---------------------------------------------------------------------------------------------------------
# The command


def checkpoint_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    epoch: int,
    cfg: RunConfig,
    parent: dict[str, str] | None = None,
) -> dict[str, Any]:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "epoch": epoch,
        "config": cfg.to_dict(),
        "model_config": cfg.to_dict()["model"],
        "rng": rng_state(),
        "version": engine.__version__,
        "format": 1,
    }
    if parent is not None:  # a resumed fine-tune keeps the lineage of the weights it continues
        state["parent"] = dict(parent)
    return state


def remove_run_outputs(run_dir: Path) -> None:
    """--restart: discard checkpoints, events and results of the previous attempt (train.log is kept)."""
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
    for name in (EVENTS_NAME, "eval.json", "eval_examples.jsonl"):
        (run_dir / name).unlink(missing_ok=True)


def train_main(run_dir: Path, restart: bool = False) -> int:
    return run_training(run_dir, restart=restart)


def run_training(
    run_dir: Path,
    restart: bool = False,
    *,
    stop: StopFlag | None = None,
    stop_after: int | None = None,
    on_batch: Callable[[int, Tensor], None] | None = None,
) -> int:
    """Train RUN_DIR; returns the exit code. `stop_after` (tests) stops as SIGTERM would after that step."""
    # 1. Everything that can be wrong with the config is checked before anything is written (exit 2).
    parent_state: dict[str, Any] | None = None
    parent_digest = ""
    parent_error: CheckpointError | None = None
    try:
        file, raw = read_raw(run_dir)
        cfg = parse_config(raw, file)
        parent = cfg.parent_path(run_dir)
        if parent is not None:
            if not parent.is_file():
                raise ConfigError(
                    f"{file}: parent: checkpoint {parent} not found (train the parent run first)"
                )
            try:
                parent_state, parent_digest = load_checkpoint_digest(parent)
                check_model_config(parent_state, cfg.model, parent)
            except CheckpointError as e:
                parent_error = e
            if parent_state is not None:
                mismatch = world_mismatch(parent_state.get("config"), cfg.world, f"parent {parent}")
                if mismatch:
                    raise ConfigError(f"{file}: world: {mismatch}")
    except ConfigError as e:
        log_only(run_dir, f"error: {e}")
        return 2

    final_path = run_dir / CHECKPOINT_DIR / FINAL_NAME
    if restart:
        remove_run_outputs(run_dir)
    elif final_path.exists():
        with RunLog(run_dir) as log:
            log.log(f"{final_path} exists: the run is finished, nothing to do (--restart trains again)")
            try:
                step = int(load_checkpoint(final_path)["step"])
            except CheckpointError:
                step = -1
            log.event("end", action="train", reason="already_finished", step=step, elapsed_s=0.0)
        return 0

    with stop_on_signals(stop or StopFlag()) as flag, RunLog(run_dir) as log:
        try:
            if parent_error is not None:
                raise parent_error
            lineage = None
            if parent_state is not None and cfg.parent is not None:
                lineage = {"path": cfg.parent, "digest": parent_digest}
            return _train(run_dir, cfg, log, parent_state, lineage, flag, stop_after, on_batch)
        except Exception as e:
            tb = traceback.format_exc()
            log.log(f"error: {type(e).__name__}: {e}\n{tb}")
            log.event("error", action="train", error=f"{type(e).__name__}: {e}", traceback=tb)
            return 1


def _train(
    run_dir: Path,
    cfg: RunConfig,
    log: RunLog,
    parent_state: dict[str, Any] | None,
    parent: dict[str, str] | None,
    stop: StopFlag,
    stop_after: int | None,
    on_batch: Callable[[int, Tensor], None] | None,
) -> int:
    from engine import tokenizer
    from engine.data import Part, train_set

    t_start = time.monotonic()
    tc = cfg.train
    if cfg.model.vocab_size != tokenizer.VOCAB_SIZE:
        raise RuntimeError(f"model vocab {cfg.model.vocab_size} != tokenizer vocab {tokenizer.VOCAB_SIZE}")
    device = resolve_device(tc.device)
    amp_dtype = resolve_amp_dtype(tc.dtype, device)

    log.log(f"run {cfg.name} ({cfg.kind}) in {run_dir}")
    log.log(f"argv: {' '.join(sys.argv)}")
    log.log(f"versions: {versions()}  device: {describe_device(device)}  autocast: {amp_dtype}")
    log.log(f"world: {cfg.world.describe()}")
    log.log("config: " + _json(cfg.to_dict()))

    # 2. Data: built once per recipe under data_root, then copied to the device in one go.
    parts = [Part(task=p.task, set=p.set, n=p.n) for p in cfg.data.parts]
    rows_np = train_set(parts, seed=cfg.data.seed, data_root=cfg.data_root_path(run_dir), world=cfg.world)
    n_rows, row_len = rows_np.shape
    if row_len > cfg.model.max_seq_len:
        raise RuntimeError(f"rows of {row_len} tokens exceed model.max_seq_len {cfg.model.max_seq_len}")
    tokens = torch.from_numpy(np.array(rows_np, dtype=np.uint8, copy=True)).to(device)
    total_steps = total_steps_for(n_rows, tc)
    graphed = should_capture(tc.compile, device, total_steps) and on_batch is None
    batcher = Batcher(
        tokens, tc.batch_size, cfg.seed, group_by_length=tc.group_by_length,
        width_multiple=GRAPH_WIDTH_MULTIPLE if graphed else 1,
    )  # fmt: skip
    spe = batcher.steps_per_epoch
    packing = tc.packing and not graphed  # the CUDA-graph loop runs the same batches unpacked (same loss)
    order = "grouped by length" if tc.group_by_length else "shuffled"
    padding = (
        packed_fraction(np.concatenate([batcher.lengths_of(s) for s in range(min(200, spe))]), tc.batch_size)
        if packing
        else batcher.padded_fraction()
    )
    log.log(
        f"data: {n_rows:,} rows x {row_len} tokens; {batcher.steps_per_epoch:,} steps/epoch; "
        f"{total_steps:,} steps; batches {order}{', packed' if packing else ''}, {padding:.0%} padding"
    )

    # 3. Model and optimizer: fresh, from the parent (fine-tuning), or from our newest checkpoint (resume).
    torch.manual_seed(cfg.seed)
    model = Transformer(cfg.model)
    if parent_state is not None:
        model.load_state_dict(parent_state["model"])
        log.log(f"initialised from parent {cfg.parent} (step {parent_state.get('step')})")
        if parent is not None:
            log.log(f"parent checkpoint digest: sha256 {parent['digest']}")
    model.to(device)
    optimizer = make_optimizer(model, tc, device, capturable=graphed)
    start_step = 0
    resume = latest_checkpoint(run_dir)
    if resume is not None:
        state = load_checkpoint(resume, map_location=device)
        check_model_config(state, cfg.model, resume)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state.get("rng", {}))
        start_step = int(state["step"])
        log.log(f"resumed from {resume} at step {start_step:,}")
        if isinstance(state.get("parent"), dict):
            parent = {str(k): str(v) for k, v in state["parent"].items()}  # the weights descend from that one
        changed = _changed_keys(state.get("config", {}), cfg.to_dict())
        if changed:
            log.log(f"warning: config.toml changed since that checkpoint: {', '.join(changed)}")
    log.log(f"model: {model.num_params():,} parameters")

    loop: TrainLoop | GraphedTrainLoop
    if graphed:
        from engine.cuda_graphs import GraphedTrainLoop

        fuse = should_compile(tc.compile, device, total_steps)
        mode: str | None = "cuda-graph+compile" if fuse else "cuda-graph"
        loop = GraphedTrainLoop(
            model, optimizer, batcher, lambda s: lr_at(s, total_steps, tc.warmup_steps, tc.lr), tc.grad_clip,
            tokenizer.PAD, amp_dtype, compile_loss=fuse, answer_only=tc.loss == "answer",
        )  # fmt: skip
    else:
        compiled = should_compile(tc.compile, device, total_steps)
        mode = (COMPILE_MODE if device.type == "cuda" else "default") if compiled else None
        loop = TrainLoop(model, optimizer, batcher, tc, total_steps, tokenizer.PAD, amp_dtype, mode, on_batch)
    log.event(
        "start",
        action="train",
        config=cfg.to_dict(),
        world=cfg.world.to_dict(),
        versions=versions(),
        device=describe_device(device),
        resumed_from_step=start_step,
        total_steps=total_steps,
        compiled=mode or False,
        **({"parent": parent} if parent is not None else {}),
    )

    def save(step: int, path: Path) -> None:
        digest = save_checkpoint(path, checkpoint_state(model, optimizer, step, step // spe, cfg, parent))
        lineage = {"parent": parent} if parent is not None else {}
        log.event("checkpoint", step=step, path=str(path.relative_to(run_dir)), digest=digest, **lineage)

    ckpt_dir = run_dir / CHECKPOINT_DIR
    tokens_per_step = tc.batch_size * float(batcher.lengths.mean() - 1)  # trained (non-PAD) positions
    rate_meter = RateMeter()
    rate_meter.add(time.monotonic(), start_step)
    last_t, done = time.monotonic(), start_step
    model.train()
    for s in range(start_step, total_steps):
        if stop.requested:
            break
        loop.step(s)
        done = s + 1
        now = time.monotonic()
        if done % tc.log_every_steps == 0 or now - last_t >= tc.log_every_s or done == total_steps:
            rate = rate_meter.add(now, done)
            loss = loop.take_loss()
            lr = lr_at(s, total_steps, tc.warmup_steps, tc.lr)
            eta = (total_steps - done) / rate if rate > 0 else float("nan")
            log.event(
                "step",
                step=done,
                total_steps=total_steps,
                epoch=round(done / spe, 4),
                loss=round(loss, 6),
                lr=lr,
                tokens_per_s=round(rate * tokens_per_step, 1),
                eta_s=round(eta, 1) if math.isfinite(eta) else None,
            )
            log.log(
                f"step {done:>8,}/{total_steps:,}  epoch {done / spe:7.3f}  loss {loss:.4f}  lr {lr:.3e}  "
                f"{rate:,.1f} steps/s  eta {_hms(eta)}"
            )
            last_t = now
        if done % tc.checkpoint_every == 0 and done < total_steps:
            save(done, ckpt_dir / step_name(done))
            prune_checkpoints(run_dir, tc.keep_checkpoints)
        if stop_after is not None and done >= stop_after:
            stop.signum = signal.SIGTERM

    elapsed = round(time.monotonic() - t_start, 3)
    if stop.requested and done < total_steps:
        # nothing to save before the first step, nor twice for the same step
        if done > 0 and latest_checkpoint(run_dir) != ckpt_dir / step_name(done):
            save(done, ckpt_dir / step_name(done))
            prune_checkpoints(run_dir, tc.keep_checkpoints)
        name = signal.Signals(stop.signum).name
        log.log(f"stopped by {name} at step {done:,}; resume with the same command")
        log.event("end", action="train", reason="terminated", step=done, elapsed_s=elapsed)
        return 128 + stop.signum

    save(done, ckpt_dir / FINAL_NAME)
    log.log(f"finished: {done:,} steps in {_hms(elapsed)}; weights in {ckpt_dir / FINAL_NAME}")
    log.event("end", action="train", reason="finished", step=done, elapsed_s=elapsed)
    return 0


class RateMeter:
    """Steps per second over a trailing window (RATE_WINDOW_S), so one slow interval (a checkpoint being
    saved, a busy machine) moves the rate and the ETA a little instead of making them swing."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self.points: list[tuple[float, int]] = []

    def add(self, t: float, step: int) -> float:
        """Record (time, step); returns the rate over the window (0.0 before two points)."""
        self.points.append((t, step))
        while len(self.points) > 2 and t - self.points[1][0] >= self.window_s:
            self.points.pop(0)
        (t0, s0) = self.points[0]
        return (step - s0) / (t - t0) if t > t0 else 0.0


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [k for key in keys for k in _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, separators=(", ", ": "))


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
