"""Loss curves from a run folder: `step` and `checkpoint` events of events.jsonl, warm-up from config.toml.

Plain data, no widgets: the run screen and the compare screen both feed a `LossPlot` from a `Curve`.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftui.rundir import EvalResults

# Enough points for any terminal width; past this every other point is dropped (a plot 80 cells wide shows
# at most a few hundred distinct steps anyway).
MAX_POINTS = 4_000
# EMA weight of the previous smoothed value (TensorBoard's "smoothing" slider; 0.9 there by default too).
EMA_WEIGHT = 0.9


@dataclass
class Curve:
    """One run's training loss: parallel lists of steps and losses, the checkpoint steps, the warm-up end."""

    name: str
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)
    warmup_steps: int | None = None
    total_steps: int | None = None

    def add_events(self, events: Iterable[dict[str, Any]]) -> bool:
        """Take the `step` and `checkpoint` events of a batch; True when anything was added.

        A step at or before the last one means the run started again (a resume from a checkpoint repeats
        the steps after it; `--restart` starts at 1): the points from that step on are replaced.
        """
        added = False
        for event in events:
            kind = event.get("event")
            step = event.get("step")
            if isinstance(step, bool) or not isinstance(step, int):
                continue
            if kind == "checkpoint":
                if step not in self.checkpoints:
                    self.checkpoints.append(step)
                    self.checkpoints.sort()
                    added = True
                continue
            if kind != "step":
                continue
            loss = event.get("loss")
            if isinstance(loss, bool) or not isinstance(loss, int | float) or not math.isfinite(loss):
                continue
            if self.steps and step <= self.steps[-1]:
                keep = next(i for i, s in enumerate(self.steps) if s >= step)
                del self.steps[keep:], self.losses[keep:]
            self.steps.append(step)
            self.losses.append(float(loss))
            total = event.get("total_steps")
            if isinstance(total, int) and not isinstance(total, bool):
                self.total_steps = total
            added = True
        if len(self.steps) > MAX_POINTS:
            self.steps, self.losses = self.steps[::2], self.losses[::2]
        return added


def ema(values: Sequence[float], weight: float = EMA_WEIGHT) -> list[float]:
    """Exponential moving average, debiased (the first points are not pulled towards zero)."""
    out: list[float] = []
    acc = 0.0
    for i, value in enumerate(values, start=1):
        acc = weight * acc + (1 - weight) * value
        out.append(acc / (1 - weight**i))
    return out


def read_warmup_steps(config_toml: Path) -> int | None:
    """`[train] warmup_steps` of a run's resolved config.toml; None when missing, unreadable or zero."""
    try:
        with open(config_toml, "rb") as handle:
            config = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    train = config.get("train")
    value = train.get("warmup_steps") if isinstance(train, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def eval_means(results: EvalResults | None) -> dict[str, tuple[str, float]]:
    """`set/task` -> (metric, mean) of a run's eval.json; sets without a finite mean are left out."""
    if results is None or not results.sets:
        return {}
    return {
        name: (entry.metric or "", float(entry.mean))
        for name, entry in results.sets.items()
        if entry.mean is not None and math.isfinite(entry.mean)
    }
