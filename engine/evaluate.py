"""Evaluation of one run: batched greedy decoding with the KV cache, scoring, `eval.json`.

Each query is decoded from `<bos>prompt=` until `<eos>` or the task's token limit. Prompts are grouped by
token length (IDs are 4 digits, so most tasks have one length; inside and perimeter have a few), which
makes every batch rectangular: no padding and no attention mask beyond the causal one.
"""

from __future__ import annotations

import json
import signal
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine.checkpoint import CHECKPOINT_DIR, FINAL_NAME, load_checkpoint_digest
from engine.config import ConfigError, ModelConfig, RunConfig, config_hash, parse_config, read_raw
from engine.device import describe_device, resolve_amp_dtype, resolve_device, versions
from engine.filelock import atomic_write_bytes
from engine.model import KVCache, Transformer
from engine.runlog import RunLog, log_only
from engine.stopping import StopFlag, stop_on_signals
from engine.world import world_mismatch

EVAL_NAME = "eval.json"
EXAMPLES_NAME = "eval_examples.jsonl"
EVAL_FORMAT = 1


# ---------------------------------------------------------------------------------------------------------
# Decoding


@torch.no_grad()
def decode_batch(
    model: Transformer,
    idx: Tensor,
    max_new_tokens: int,
    eos_id: int,
    use_cache: bool = True,
    cache_dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Greedy continuation [B, max_new_tokens] of the rectangular prompt batch idx [B, P].

    After a row emits EOS it keeps emitting EOS; decoding stops when every row has finished. With
    use_cache=False every step recomputes the whole sequence (the reference the cache is tested against).
    """
    b, p = idx.shape
    out = torch.full((b, max_new_tokens), eos_id, dtype=torch.long, device=idx.device)
    finished = torch.zeros(b, dtype=torch.bool, device=idx.device)
    cache = KVCache(model.cfg, b, p + max_new_tokens, idx.device, cache_dtype) if use_cache else None
    seq = idx
    logits = model(idx, 0, cache)[:, -1] if cache is not None else model(idx)[:, -1]
    for i in range(max_new_tokens):
        nxt = torch.where(finished, eos_id, logits.argmax(-1))
        out[:, i] = nxt
        finished |= nxt == eos_id
        if i == max_new_tokens - 1 or bool(finished.all()):
            break
        if cache is not None:
            logits = model(nxt[:, None], p + i, cache)[:, -1]
        else:
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            logits = model(seq)[:, -1]
    return out


def generate(
    model: Transformer,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    use_cache: bool = True,
    graphed: bool = False,
) -> list[str]:
    """Greedy completions (the text after `=`, EOS stripped) of `prompts` (without the `=`).

    graphed (CUDA only): replay a captured decode step (engine/cuda_graphs.py) instead of launching each
    step's kernels from Python; the last, smaller batch of a length is padded to the captured batch size.
    """
    from engine.tokenizer import EOS, PAD, decode, encode_batch

    if not prompts:
        return []
    rows = encode_batch([p + "=" for p in prompts], add_eos=False)
    lengths = (rows != PAD).sum(axis=1)
    completions: list[str] = [""] * len(prompts)
    for length in np.unique(lengths):
        members = np.flatnonzero(lengths == length)
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            idx = torch.from_numpy(rows[chunk, :length].astype(np.int64)).to(device)
            if graphed:
                out = _graphed_decode(model, idx, min(batch_size, len(members)), max_new_tokens, amp_dtype)
            else:
                with torch.autocast(
                    device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
                ):
                    out = decode_batch(model, idx, max_new_tokens, EOS, use_cache, amp_dtype or torch.float32)
            for i, tokens in zip(chunk.tolist(), out.tolist(), strict=True):
                end = tokens.index(EOS) if EOS in tokens else len(tokens)
                completions[i] = decode(tokens[:end])
    return completions


_DECODERS: dict[tuple[int, int, int, int], Any] = {}


def _graphed_decode(
    model: Transformer, idx: Tensor, batch: int, max_new_tokens: int, amp_dtype: torch.dtype | None
) -> Tensor:
    """Decode idx with a captured step, one graph per (model, batch, prompt length, token limit)."""
    from engine.cuda_graphs import GraphedDecoder
    from engine.tokenizer import EOS

    n, length = idx.shape
    key = (id(model), batch, length, max_new_tokens)
    decoder = _DECODERS.get(key)
    if decoder is None:
        decoder = _DECODERS[key] = GraphedDecoder(model, batch, length, max_new_tokens, EOS, amp_dtype)
    if n < batch:  # pad with copies of the first row; their outputs are dropped
        idx = torch.cat([idx, idx[:1].expand(batch - n, length)])
    return decoder.decode(idx)[:n]


# ---------------------------------------------------------------------------------------------------------
# Metrics and the command


@dataclass(frozen=True)
class SetResult:
    key: str
    task: str
    set: str
    metric: str
    values: np.ndarray
    parse_failed: np.ndarray

    def summary(self) -> dict[str, Any]:
        v = self.values
        return {
            "task": self.task,
            "set": self.set,
            "metric": self.metric,
            "mean": float(v.mean()),
            "median": float(np.median(v)),
            "std": float(v.std()),
            "n": int(v.size),
            "parse_failure_rate": float(self.parse_failed.mean()),
        }


def load_model(state: dict[str, Any], device: torch.device) -> Transformer:
    model = Transformer(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def eval_main(run_dir: Path, checkpoint: Path | None = None) -> int:
    try:
        file, raw = read_raw(run_dir)
        cfg = parse_config(raw, file)
        ckpt = checkpoint if checkpoint is not None else run_dir / CHECKPOINT_DIR / FINAL_NAME
        if not ckpt.is_file():
            hint = "" if checkpoint is not None else " (train the run first: python -m engine train RUN_DIR)"
            raise ConfigError(f"{ckpt}: checkpoint not found{hint}")
    except ConfigError as e:
        log_only(run_dir, f"error: {e}")
        return 2

    with stop_on_signals(StopFlag()) as stop, RunLog(run_dir) as log:
        try:
            return _evaluate(run_dir, cfg, config_hash(raw), ckpt, log, stop)
        except Exception as e:
            tb = traceback.format_exc()
            log.log(f"error: {type(e).__name__}: {e}\n{tb}")
            log.event("error", action="eval", error=f"{type(e).__name__}: {e}", traceback=tb)
            return 1


def _evaluate(run_dir: Path, cfg: RunConfig, cfg_hash: str, ckpt: Path, log: RunLog, stop: StopFlag) -> int:
    from engine.data import eval_sets
    from engine.tasks import get_task

    t_start = time.monotonic()
    device = resolve_device(cfg.train.device)
    amp_dtype = resolve_amp_dtype(cfg.train.dtype, device)
    # CheckpointError: exit 1 with an error event. The digest says which weights eval.json scores.
    state, digest = load_checkpoint_digest(ckpt, map_location=device)
    mismatch = world_mismatch(state.get("config"), cfg.world, f"checkpoint {ckpt}")
    if mismatch:  # the test sets of another world would score a model on cities it never saw
        log.log(f"error: {run_dir / 'config.toml'}: world: {mismatch}")
        log.event("error", action="eval", error=f"world: {mismatch}")
        return 2
    model = load_model(state, device)
    step = int(state.get("step", -1))
    ec = cfg.eval
    # Named relative to the run folder when it lies inside it (eval.json, events.jsonl): the worker passes an
    # absolute run folder, and a folder's files must not carry the machine's paths (shipped results, moves).
    try:
        ckpt_name = str(ckpt.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        ckpt_name = str(ckpt.resolve())
    log.log(f"eval {cfg.name}: {ckpt} (step {step:,}) on {describe_device(device)}, autocast {amp_dtype}")
    log.log(f"checkpoint digest: sha256 {digest}")
    log.log(f"world: {cfg.world.describe()}")
    log.event(
        "start", action="eval", config=cfg.to_dict(), world=cfg.world.to_dict(), versions=versions(),
        device=describe_device(device), checkpoint=ckpt_name, checkpoint_digest=digest,
    )  # fmt: skip
    sets = eval_sets(list(ec.tasks), list(ec.sets), ec.n, ec.seed, cfg.data_root_path(run_dir), cfg.world)
    results: list[SetResult] = []
    examples: list[dict[str, Any]] = []
    for done, es in enumerate(sets, start=1):
        if stop.requested:
            log.log(f"stopped by {signal.Signals(stop.signum).name}; eval.json not written")
            elapsed = round(time.monotonic() - t_start, 3)
            log.event("end", action="eval", reason="terminated", step=step, elapsed_s=elapsed)
            return 128 + stop.signum
        task = get_task(es.task)
        t0 = time.monotonic()
        completions = generate(
            model, es.prompts, task.max_new_tokens, ec.batch_size, device, amp_dtype,
            graphed=device.type == "cuda" and cfg.train.compile != "off",
        )  # fmt: skip
        values, failed = task.score(completions, es.answers)
        res = SetResult(es.key, es.task, es.set, task.metric, np.asarray(values, dtype=np.float64),
                        np.asarray(failed, dtype=bool))  # fmt: skip
        results.append(res)
        s = res.summary()
        dt = time.monotonic() - t0
        log.log(
            f"{es.key:<24} {task.metric:<9} mean {s['mean']:>12.4f}  median {s['median']:>10.2f}  "
            f"parse failures {s['parse_failure_rate']:.3f}  n {s['n']:,}  ({dt:.1f} s)"
        )
        log.event(
            "eval", set=es.key, done=done, total=len(sets), mean=s["mean"],
            parse_failure_rate=s["parse_failure_rate"], n=s["n"],
        )  # fmt: skip
        if ec.save_examples:
            columns = zip(es.prompts, es.answers, completions, res.values, res.parse_failed, strict=True)
            examples.extend(
                {
                    "set": es.key,
                    "prompt": p,
                    "answer": a,
                    "completion": c,
                    "value": float(v),
                    "parse_failed": bool(f),
                }
                for p, a, c, v, f in columns
            )

    report = {
        "format": EVAL_FORMAT,
        "name": cfg.name,
        "seed": cfg.seed,
        "checkpoint": ckpt_name,
        "checkpoint_digest": digest,
        "step": step,
        "config_hash": cfg_hash,
        "world": cfg.world.to_dict(),
        "created": round(time.time(), 3),
        "sets": {r.key: r.summary() for r in results},
    }
    if ec.save_examples:
        body = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in examples).encode()
        atomic_write_bytes(run_dir / EXAMPLES_NAME, body)
    atomic_write_bytes(run_dir / EVAL_NAME, (json.dumps(report, indent=1) + "\n").encode())
    elapsed = round(time.monotonic() - t_start, 3)
    log.log(f"wrote {run_dir / EVAL_NAME}: {len(results)} sets in {elapsed:.1f} s")
    log.event("end", action="eval", reason="finished", step=step, elapsed_s=elapsed)
    return 0
