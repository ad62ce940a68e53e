"""Training and decoding speed of the engine, measured against plain PyTorch in one run.

    .venv/bin/python bench/train_bench.py                 # CPU here (or CUDA when present)
    .venv/bin/python bench/train_bench.py --device cuda --steps 300 --compile default reduce-overhead

At the study's model shape (6 x 128, 1,601,920 params), batch 128, rows of 48 tokens:
- training steps/s of (a) the model's own forward+backward alone, (b) a plain reference loop written here
  (eager, fp32, host-side batches copied each step, unfused AdamW, LambdaLR, loss.item() every step) and
  (c) our loop (engine.train.TrainLoop: device-resident data, on-device batches and loss, fused AdamW and
  bf16 autocast on CUDA, optional torch.compile); the overhead of (c) beyond (a), and (c) / (b);
- greedy decoding tokens/s with the KV cache against full recomputation (same prompts, no early stop);
- on CUDA: the projected time of pt1 (328,128 steps) and of evaluating 14 sets x 10,000 queries;
- batching (`--batching`, on by default): the laptop profile's pt1 (4 x 64, batch 64, its real seven-task
  rows of 23-57 tokens) stepped with every row padded to the mix's longest row (57, as before batches were
  cropped), cropped to each batch's longest row (random batches), grouped by length, and packed (the
  profile's setting: the cropped batches' rows packed, engine/packing.py). The four are interleaved in rounds
  so a busy machine slows them alike; packed / padded is the speed-up (issue 14's target: >= 1.5x).
Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.batching import Batcher  # noqa: E402
from engine.config import ModelConfig, TrainConfig  # noqa: E402
from engine.device import resolve_amp_dtype, resolve_device  # noqa: E402
from engine.evaluate import decode_batch  # noqa: E402
from engine.model import Transformer  # noqa: E402
from engine.packing import packed_fraction  # noqa: E402
from engine.tokenizer import BOS, EOS, PAD  # noqa: E402
from engine.train import TrainLoop, make_optimizer  # noqa: E402

PT1_STEPS = 328_128
ROW_LEN = 48


def synthetic_rows(n: int, seed: int = 0) -> np.ndarray:
    """uint8 [n, ROW_LEN] rows shaped like the real ones: BOS, 18-46 characters, EOS, PAD."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(4, 98, size=(n, ROW_LEN), dtype=np.uint8)
    lengths = rng.integers(18, ROW_LEN - 1, size=n)
    rows[:, 0] = BOS
    rows[np.arange(n), lengths + 1] = EOS
    rows[np.arange(ROW_LEN)[None, :] > (lengths + 1)[:, None]] = PAD
    return rows


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device: torch.device, warmup: int, steps: int, run: Callable[[int], None]) -> float:
    """Steps per second of run(step) over `steps` steps after `warmup` untimed ones.

    On CUDA: total time over all steps (per-step syncs would hide the asynchronous overlap). On the CPU: the
    median step, so that a shared, busy machine (other processes stealing the cores) disturbs it less.
    """
    for s in range(warmup):
        run(s)
    sync(device)
    if device.type == "cpu":
        durations = []
        for s in range(warmup, warmup + steps):
            t0 = time.perf_counter()
            run(s)
            durations.append(time.perf_counter() - t0)
        return 1.0 / float(np.median(durations))
    t0 = time.perf_counter()
    for s in range(warmup, warmup + steps):
        run(s)
    sync(device)
    return steps / (time.perf_counter() - t0)


def bench_forward_backward(
    cfg: ModelConfig, rows: np.ndarray, batch: int, device: torch.device, args
) -> float:
    torch.manual_seed(0)
    model = Transformer(cfg).to(device)
    x = torch.from_numpy(rows[:batch].astype(np.int64)).to(device)
    amp = resolve_amp_dtype("auto", device)

    def run(step: int) -> None:
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(x[:, :-1])
        F.cross_entropy(
            logits.float().reshape(-1, cfg.vocab_size), x[:, 1:].reshape(-1), ignore_index=PAD
        ).backward()
        model.zero_grad(set_to_none=True)

    return timed(device, args.warmup, args.steps, run)


def bench_reference(cfg: ModelConfig, rows: np.ndarray, batch: int, device: torch.device, args) -> float:
    """The straightforward loop: what one writes first."""
    torch.manual_seed(0)
    model = Transformer(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01, foreach=False)
    total = args.warmup + args.steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / total))
    rng = np.random.default_rng(0)
    losses: list[float] = []

    def run(step: int) -> None:
        idx = rng.integers(0, len(rows), size=batch)
        x = torch.from_numpy(rows[idx].astype(np.int64)).to(device)
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), x[:, 1:].reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())

    return timed(device, args.warmup, args.steps, run)


def bench_ours(
    cfg: ModelConfig, rows: np.ndarray, batch: int, device: torch.device, args, compile_mode: str | None
) -> float:
    torch.manual_seed(0)
    model = Transformer(cfg).to(device)
    tc = TrainConfig(batch_size=batch, lr=3e-4)
    batcher = Batcher(torch.from_numpy(rows).to(device), batch, seed=0)
    total = args.warmup + args.steps
    amp = resolve_amp_dtype("auto", device)
    loop = TrainLoop(model, make_optimizer(model, tc, device), batcher, tc, total, PAD, amp, compile_mode)

    def run(step: int) -> None:
        loop.step(step)
        if (step + 1) % 100 == 0:  # the loop's logging cadence: one device sync per log line
            loop.take_loss()

    return timed(device, args.warmup, args.steps, run)


def bench_batching(device: torch.device, steps: int, rounds: int = 5) -> dict[str, float]:
    """Steps/s of the laptop pt1 under the three batchings (median step, interleaved rounds)."""
    from engine.data import Part, build_train_tokens
    from engine.world import WorldSpec

    tasks = ("distance", "trianglearea", "angle", "compass", "inside", "perimeter", "crossing")
    rows = build_train_tokens(
        [Part(t, "standard", 4096) for t in tasks], 0, WorldSpec(min_population=1_500_000)
    )
    tokens = torch.from_numpy(rows).to(device)
    cfg = ModelConfig(n_layer=4, d_model=64, n_head=4, d_mlp=256, max_seq_len=96)
    tc = TrainConfig(batch_size=64, lr=1e-3, loss="all")
    variants = {
        "padded to 57": (Batcher(tokens, 64, seed=0, width_multiple=rows.shape[1]), tc),
        "cropped": (Batcher(tokens, 64, seed=0), tc),
        "grouped by length": (Batcher(tokens, 64, seed=0, group_by_length=True), tc),
        "packed": (Batcher(tokens, 64, seed=0), replace(tc, packing=True)),
    }
    loops = {}
    for name, (batcher, config) in variants.items():
        torch.manual_seed(0)
        model = Transformer(cfg).to(device)
        optimizer = make_optimizer(model, config, device)
        loops[name] = TrainLoop(model, optimizer, batcher, config, 10**6, PAD, None)
    durations: dict[str, list[float]] = {name: [] for name in variants}
    step = 0
    for r in range(rounds + 1):
        for name, loop in loops.items():
            for s in range(step, step + steps):
                t0 = time.perf_counter()
                loop.step(s)
                if r:  # round 0 warms up
                    durations[name].append(time.perf_counter() - t0)
        step += steps
    rates = {name: 1.0 / float(np.median(d)) for name, d in durations.items()}
    padding = {name: batcher.padded_fraction() for name, (batcher, _) in variants.items()}
    packed_batcher = variants["packed"][0]
    first_rows = np.concatenate([packed_batcher.lengths_of(s) for s in range(200)])
    padding["packed"] = packed_fraction(first_rows, 64)
    for name in variants:
        print(f"  laptop pt1, {name:<18}: {rates[name]:7.2f} steps/s  "
              f"({padding[name]:.0%} of computed positions are padding)")  # fmt: skip
    padded = rates["padded to 57"]
    ratios = {name: rates[name] / padded for name in ("packed", "grouped by length", "cropped")}
    print("  " + "   ".join(f"{name} / padded: {r:.2f}x" for name, r in ratios.items()))
    return rates


def bench_decode(
    cfg: ModelConfig, device: torch.device, n_prompts: int, new_tokens: int, full: bool
) -> float:
    """Generated tokens/s for n_prompts prompts of 21 tokens (a distance query), new_tokens each."""
    torch.manual_seed(0)
    model = Transformer(cfg).to(device).eval()
    prompts = torch.from_numpy(synthetic_rows(n_prompts, seed=1)[:, :21].astype(np.int64)).to(device)
    amp = resolve_amp_dtype("auto", device)

    def run() -> None:
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            # eos_id -1 never matches: every row decodes all new_tokens, the same work both ways
            decode_batch(
                model, prompts, new_tokens, eos_id=-1, use_cache=not full, cache_dtype=amp or torch.float32
            )

    run()  # warm-up
    sync(device)
    t0 = time.perf_counter()
    run()
    sync(device)
    return n_prompts * new_tokens / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 7 on CPU, 300 on CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2 CPU, 30 CUDA)")
    p.add_argument(
        "--compile", nargs="*", default=[], metavar="MODE",
        help="also time our loop under torch.compile with these modes (default, reduce-overhead, ...)",
    )  # fmt: skip
    p.add_argument("--decode-prompts", type=int, default=None, help="default 128 on CPU, 2000 on CUDA")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--batching", action=argparse.BooleanOptionalAction, default=True,
                   help="time the laptop pt1 padded / cropped / grouped by length (default on)")  # fmt: skip
    p.add_argument("--only-batching", action="store_true", help="skip everything but --batching")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    args.steps = args.steps or (300 if cuda else 7)
    args.warmup = args.warmup if args.warmup is not None else (30 if cuda else 2)
    n_decode = args.decode_prompts or (2000 if cuda else 128)
    if args.batching or args.only_batching:
        print("batching (issue 14):")
        bench_batching(device, steps=20 if not cuda else 100)
        if args.only_batching:
            return
    cfg = ModelConfig()
    rows = synthetic_rows(max(args.batch * 64, 8192))
    name = torch.cuda.get_device_name() if cuda else f"cpu, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; model {Transformer(cfg).num_params():,} params; "
          f"batch {args.batch} x {ROW_LEN} tokens; {args.steps} timed steps after {args.warmup}")  # fmt: skip

    fb = bench_forward_backward(cfg, rows, args.batch, device, args)
    ref = bench_reference(cfg, rows, args.batch, device, args)
    ours = bench_ours(cfg, rows, args.batch, device, args, compile_mode=None)
    label = "bf16 autocast, fused AdamW" if cuda else "fp32"
    print(f"model forward+backward only : {fb:9.2f} steps/s")
    print(f"reference loop (eager fp32)  : {ref:9.2f} steps/s")
    print(f"our loop ({label}) : {ours:9.2f} steps/s")
    print(f"  our loop / reference       : {ours / ref:9.2f}x")
    print(f"  our overhead beyond fwd+bwd: {100 * (fb / ours - 1):8.1f} %")
    best = ours
    for mode in args.compile:
        comp = bench_ours(cfg, rows, args.batch, device, args, compile_mode=mode)
        print(f"our loop + compile {mode:<17}: {comp:9.2f} steps/s  ({comp / ref:.2f}x reference)")
        best = max(best, comp)
    if cuda:
        print(f"projected pt1 ({PT1_STEPS:,} steps) at {best:.1f} steps/s: {PT1_STEPS / best / 60:.1f} min")

    new_tokens = 20
    cached = bench_decode(cfg, device, n_decode, new_tokens, full=False)
    full = bench_decode(cfg, device, n_decode, new_tokens, full=True)
    print(f"decode {n_decode} prompts x {new_tokens} new tokens: KV cache {cached:,.0f} tok/s, "
          f"full recomputation {full:,.0f} tok/s, ratio {cached / full:.1f}x")  # fmt: skip
    if cuda:
        # the 14 sets: 4 tasks x 20 and 3 tasks x 30 new tokens, twice (standard + atlantis), 10,000 each
        tokens = 2 * 10_000 * (4 * 20 + 3 * 30)
        print(f"projected eval of 14 sets x 10,000 (no early stop): {tokens / cached:.1f} s")
    if not math.isfinite(ours):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
