"""How long a run trains and at which learning rate: pure functions of the data size and the step (nanoGPT's
get_lr), so resuming needs no scheduler state."""

from __future__ import annotations

from engine.config import TrainConfig


def total_steps_for(n_rows: int, cfg: TrainConfig) -> int:
    steps = cfg.epochs * (n_rows // cfg.batch_size)
    return min(steps, cfg.max_steps) if cfg.max_steps > 0 else steps


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Learning rate of (0-based) `step`: linear warm-up to `peak`, then linear decay to 0 at total_steps."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    return peak * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
