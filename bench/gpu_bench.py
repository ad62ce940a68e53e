"""GPU speed of the engine at the study's paper shape (6 x 128, batch 128), in one process on one card.

Prints, for the same card and data:
- training steps/s: a plain eager reference loop written here (per-step host->device copy, loss.item() every
  step, foreach AdamW: the straightforward script), the engine's eager loop, the engine's loop under
  torch.compile, the engine's CUDA-graphed loop, the graph of the compiled step (what compile = "auto" runs
  from 10,000 steps), and (when `transformers` is importable) the original study's
  stack: Qwen2ForCausalLM of the same shape trained by transformers.Trainer in fp16;
- evaluation of 14 sets x N queries with the KV cache, eager and CUDA-graphed decode step;
- aggregate steps/s of 1, 2, 4, 8 concurrent fine-tunes (separate processes, graphed loop);
- projections: pt1 at paper size (328,128 steps) and the single-seed study (pt1, ftwb1 x 7, ftwb2 x 21, and
  the 29 evaluations), with the best packing.

    python bench/gpu_bench.py            # about 4-6 minutes on an H100
    python bench/gpu_bench.py --quick    # fewer seconds per measurement (also runs on a CPU, for checking)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine import tokenizer  # noqa: E402
from engine.batching import Batcher  # noqa: E402
from engine.config import ModelConfig, TrainConfig  # noqa: E402
from engine.data import Part, train_set  # noqa: E402
from engine.model import Transformer, parameter_groups  # noqa: E402
from engine.schedule import lr_at  # noqa: E402
from engine.tasks import TASKS  # noqa: E402
from engine.train import TrainLoop, make_optimizer  # noqa: E402

BATCH = 128
PT1_PAPER_STEPS = 328_128
# Paper fine-tunes: per task 20,000 standard + 100,000 atlantis rows, + 7 x 256 warm-up rows, 30 epochs
FTWB1_STEPS = 30 * ((20_000 + 100_000) + 7 * 256) // BATCH
FTWB2_STEPS = 30 * (2 * (20_000 + 100_000) + 7 * 256) // BATCH


def paper_model(device: torch.device) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig()).to(device)


def rows_for_bench(data_root: Path, per_task: int) -> np.ndarray:
    parts = [Part(task=t, set="standard", n=per_task) for t in TASKS]
    return np.asarray(train_set(parts, seed=0, data_root=data_root))


def timed(step, seconds: float, warmup: int, sync) -> float:
    """Steps per second of `step(i)` over about `seconds`, after `warmup` steps."""
    for i in range(warmup):
        step(i)
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(25):
            step(warmup + n)
            n += 1
        sync()
        if time.perf_counter() - t0 >= seconds:
            return n / (time.perf_counter() - t0)


# ---- training stacks ---------------------------------------------------------------------------------------
def reference_loop(rows: np.ndarray, device: torch.device, seconds: float, sync) -> float:
    """The straightforward loop: CPU batches copied each step, loss read each step, default AdamW."""
    model = paper_model(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    cpu_rows = torch.from_numpy(rows.astype(np.int64))
    gen = torch.Generator().manual_seed(0)
    amp = device.type == "cuda"

    def step(i: int) -> None:
        idx = torch.randint(0, cpu_rows.shape[0], (BATCH,), generator=gen)
        batch = cpu_rows[idx].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                               ignore_index=tokenizer.PAD)  # fmt: skip
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()

    return timed(step, seconds, 10, sync)


def engine_loop(
    rows: np.ndarray, device: torch.device, seconds: float, sync, mode: str
) -> tuple[float, float]:
    """The engine's loop: "eager", "compile", "graph" or "graph+compile". Returns (steps/s, setup s)."""
    from engine.cuda_graphs import GraphedTrainLoop, capturable_adamw

    t0 = time.perf_counter()
    model = paper_model(device)
    cfg = TrainConfig(batch_size=BATCH, epochs=1000, lr=3e-4)
    tokens = torch.from_numpy(np.array(rows)).to(device)
    batcher = Batcher(tokens, BATCH, seed=0)
    total = 10**9
    amp = torch.bfloat16 if device.type == "cuda" else None
    if mode in ("graph", "graph+compile"):
        opt = capturable_adamw(parameter_groups(model, cfg.weight_decay), cfg.lr, cfg.betas, device)
        loop = GraphedTrainLoop(model, opt, batcher, lambda s: lr_at(s, total, cfg.warmup_steps, cfg.lr),
                                cfg.grad_clip,
                                tokenizer.PAD, amp, compile_loss=mode == "graph+compile")  # fmt: skip
    else:
        opt = make_optimizer(model, cfg, device)
        loop = TrainLoop(model, opt, batcher, cfg, total, tokenizer.PAD, amp,
                         "default" if mode == "compile" else None)  # fmt: skip

    def step(i: int) -> None:
        loop.step(i)
        if (i + 1) % 100 == 0:
            loop.take_loss()

    loop.step(0)  # compile / first kernels
    sync()
    setup = time.perf_counter() - t0
    return timed(step, seconds, 20, sync), setup


def hf_trainer(rows: np.ndarray, seconds: float) -> float | None:
    """The original study's stack: Qwen2ForCausalLM of the study's shape + transformers.Trainer, fp16."""
    try:
        import transformers
        from transformers import Qwen2Config, Qwen2ForCausalLM, Trainer, TrainerCallback, TrainingArguments
    except ImportError:
        return None
    transformers.logging.set_verbosity_error()
    cfg = Qwen2Config(vocab_size=98, hidden_size=128, intermediate_size=512, num_hidden_layers=6,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                      rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.1,
                      pad_token_id=0, bos_token_id=2, eos_token_id=3)  # fmt: skip
    model = Qwen2ForCausalLM(cfg)
    ids = torch.from_numpy(rows.astype(np.int64))

    class Rows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return ids.shape[0]

        def __getitem__(self, i: int) -> dict:
            x = ids[i]
            labels = x.clone()
            labels[x == 0] = -100
            return {"input_ids": x, "attention_mask": (x != 0).long(), "labels": labels}

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.t: list[float] = []

        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            torch.cuda.synchronize()
            self.t.append(time.perf_counter())
            if len(self.t) > 30 and self.t[-1] - self.t[30] >= seconds:
                control.should_training_stop = True

    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=BATCH, learning_rate=3e-4,
                                 weight_decay=0.01, warmup_steps=50, max_steps=100_000, fp16=True,
                                 logging_steps=100, save_strategy="no", report_to=[],
                                 dataloader_num_workers=2, disable_tqdm=True)  # fmt: skip
        Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[clock]).train()
    return (len(clock.t) - 31) / (clock.t[-1] - clock.t[30])


# ---- evaluation --------------------------------------------------------------------------------------------
def eval_all_sets(device: torch.device, data_root: Path, n: int, graphed: bool) -> tuple[float, int]:
    """Seconds to decode the 14 sets of n queries (random weights: rows rarely stop early, the worst case)."""
    from engine.data import eval_sets
    from engine.evaluate import generate

    model = paper_model(device).eval()
    sets = eval_sets(list(TASKS), ["standard", "atlantis"], n, 1, data_root)
    amp = torch.bfloat16 if device.type == "cuda" else None
    t0 = time.perf_counter()
    tokens = 0
    for es in sets:
        outs = generate(model, es.prompts, TASKS[es.task].max_new_tokens, 2000, device, amp, graphed=graphed)
        tokens += sum(len(o) + 1 for o in outs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, tokens


# ---- packing -----------------------------------------------------------------------------------------------
def pack_worker(data_root: Path, seconds: float, start_at: float) -> None:
    device = torch.device("cuda")
    rows = rows_for_bench(data_root, 2000)
    model = paper_model(device)
    from engine.cuda_graphs import GraphedTrainLoop, capturable_adamw

    tokens = torch.from_numpy(rows).to(device)
    batcher = Batcher(tokens, BATCH, seed=os.getpid())
    opt = capturable_adamw(parameter_groups(model, 0.01), 1e-5, (0.9, 0.999), device)
    loop = GraphedTrainLoop(model, opt, batcher, lambda s: 1e-5, 1.0, tokenizer.PAD, torch.bfloat16)
    for i in range(20):
        loop.step(i)
    torch.cuda.synchronize()
    time.sleep(max(0.0, start_at - time.time()))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(50):
            loop.step(n)
            n += 1
        loop.take_loss()
    torch.cuda.synchronize()
    print(json.dumps({"steps": n, "seconds": time.perf_counter() - t0}), flush=True)


def packing(data_root: Path, counts: list[int], seconds: float, start_delay: float) -> dict[int, float]:
    result = {}
    for k in counts:
        start_at = time.time() + start_delay  # every worker imports torch and captures its graph first
        argv = [sys.executable, __file__, "--pack-worker", str(data_root), str(seconds), str(start_at)]
        procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(k)]
        total = 0.0
        for p in procs:
            out, _ = p.communicate(timeout=180)
            r = json.loads(out.strip().splitlines()[-1])
            total += r["steps"] / r["seconds"]
        result[k] = total
        print(
            f"  {k} concurrent fine-tunes: {total:8.1f} steps/s in total ({total / k:.1f} each)", flush=True
        )
    return result


# ---- main --------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--eval-n", type=int, default=10_000)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--seconds", type=float, default=6.0, help="per training measurement")
    ap.add_argument("--modes", default="eager,graph,graph+compile,compile", help="engine loop variants")
    ap.add_argument("--pack", default="1,2,4,8", help="concurrent fine-tune counts")
    ap.add_argument(
        "--start-delay", type=float, default=25.0, help="packing: seconds for workers to get ready"
    )
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers Trainer stack")
    ap.add_argument("--pack-worker", nargs=3, default=None)
    args = ap.parse_args()
    if args.pack_worker:
        pack_worker(Path(args.pack_worker[0]), float(args.pack_worker[1]), float(args.pack_worker[2]))
        return
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    secs = 2.0 if args.quick else args.seconds
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"device: {name}   torch {torch.__version__}   batch {BATCH}   paper shape 6 x 128", flush=True)
    res: dict[str, object] = {"device": name, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        data_root = Path(tmp) / "data"
        rows = rows_for_bench(data_root, 20_000)
        print(f"data: {rows.shape[0]:,} rows x {rows.shape[1]} tokens", flush=True)
        ref = reference_loop(rows, device, secs, sync)
        print(f"train  reference eager loop       {ref:8.1f} steps/s   1.00x", flush=True)
        stacks = {"reference": ref}
        modes = args.modes.split(",") if cuda else ["eager"]
        for mode in [m for m in modes if m != "compile"]:  # plain compile runs last: slow to start
            rate, setup = engine_loop(rows, device, secs, sync, mode)
            stacks[f"engine_{mode}"] = rate
            print(f"train  engine {mode:<8}             {rate:8.1f} steps/s  {rate / ref:5.2f}x  "
                  f"(setup {setup:.1f} s)", flush=True)  # fmt: skip
        res["train_steps_per_s"] = stacks
        best = max(v for k, v in stacks.items() if k.startswith("engine"))

        eval_n = 200 if args.quick else args.eval_n
        ev = {}
        for graphed in [False, True] if cuda else [False]:
            seconds, tokens = eval_all_sets(device, data_root, eval_n, graphed)
            ev["graph" if graphed else "eager"] = {"seconds": seconds, "tokens_per_s": tokens / seconds}
            print(f"eval   14 sets x {eval_n:,} ({'graph' if graphed else 'eager kv'}): {seconds:6.1f} s  "
                  f"{tokens / seconds:,.0f} tokens/s", flush=True)  # fmt: skip
        if len(ev) == 2:
            print(f"       graph / eager: {ev['eager']['seconds'] / ev['graph']['seconds']:.2f}x", flush=True)
        res["eval"] = ev

        pack: dict[int, float] = {}
        if cuda:
            print("packing (graphed fine-tune loops, batch 128, separate processes):", flush=True)
            pack = packing(data_root, [int(k) for k in args.pack.split(",")], secs, args.start_delay)
            res["packing_steps_per_s"] = pack
        # The slow-to-start stacks last, so a cut-short run still reports the rest.
        if cuda and "compile" in modes:
            rate, setup = engine_loop(rows, device, secs, sync, "compile")
            stacks["engine_compile"] = rate
            print(f"train  engine compile             {rate:8.1f} steps/s  {rate / ref:5.2f}x  "
                  f"(setup {setup:.1f} s)", flush=True)  # fmt: skip
        if cuda and not args.quick and not args.no_hf:
            hf = hf_trainer(rows, secs)
            if hf is not None:
                stacks["hf_trainer"] = hf
                print(f"train  transformers Trainer fp16  {hf:8.1f} steps/s  {hf / ref:5.2f}x", flush=True)
                print(f"       engine best / Trainer: {best / hf:.1f}x", flush=True)
    single = max(v for k, v in stacks.items() if k.startswith("engine"))
    pt1_min = PT1_PAPER_STEPS / single / 60
    agg = max(pack.values()) if pack else single
    best_k = max(pack, key=lambda k: pack[k]) if pack else 1
    ft_steps = 7 * FTWB1_STEPS + 21 * FTWB2_STEPS
    eval_s = min(e["seconds"] for e in ev.values()) * (10_000 / eval_n)
    study_min = pt1_min + ft_steps / agg / 60 + 29 * eval_s / 60 / best_k
    print(
        f"projection: pt1 (paper, {PT1_PAPER_STEPS:,} steps) {pt1_min:.1f} min at {single:.0f} steps/s",
        flush=True,
    )
    print(f"projection: single-seed study (pt1 + {ft_steps:,} fine-tune steps at {agg:.0f} steps/s with "
          f"{best_k} per GPU + 29 evals) {study_min:.1f} min", flush=True)  # fmt: skip
    res["projection_min"] = {"pt1": pt1_min, "study": study_min, "packing": best_k}
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
