"""Evaluation: KV-cache decoding, an overfit model reproduced through the evaluator, eval.json, failures."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tomllib
from pathlib import Path

import pytest
import torch

from engine.batching import Batcher
from engine.checkpoint import load_checkpoint
from engine.config import ModelConfig, TrainConfig, config_hash
from engine.data import Part, build_train_tokens, eval_sets
from engine.evaluate import eval_main, generate, load_model
from engine.model import Transformer
from engine.tasks import TASKS, get_task
from engine.tokenizer import PAD, decode
from engine.train import TrainLoop, make_optimizer, run_training
from tests.engine.train_helpers import (
    SMOKE_DIR,
    events,
    one_torch_thread,  # noqa: F401 (autouse fixture)
    run_engine,
    tiny_config,
    write_run,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    run_dir = write_run(tmp_path_factory.mktemp("runs") / "tiny", tiny_config(data_root, train={"epochs": 3}))
    assert run_training(run_dir) == 0
    return run_dir


def test_kv_cache_decoding_equals_full_recomputation(trained_run: Path, data_root: Path) -> None:
    model = load_model(load_checkpoint(trained_run / "checkpoints" / "final.pt"), CPU)
    sets = eval_sets(list(TASKS), ["atlantis"], 6, seed=3, data_root=data_root)
    prompts = [p for s in sets for p in s.prompts]  # every task: several prompt lengths
    cached = generate(model, prompts, 12, batch_size=8, device=CPU)
    full = generate(model, prompts, 12, batch_size=8, device=CPU, use_cache=False)
    assert cached == full
    assert sum(len(c) for c in cached) > len(prompts)  # real continuations, not only empty strings


def test_batches_grouped_by_length_keep_the_input_order(trained_run: Path, data_root: Path) -> None:
    model = load_model(load_checkpoint(trained_run / "checkpoints" / "final.pt"), CPU)
    prompts = [p for s in eval_sets(["inside", "distance"], ["standard"], 5, 4, data_root) for p in s.prompts]
    assert len({len(p) for p in prompts}) >= 3
    one_by_one = [generate(model, [p], 8, batch_size=1, device=CPU)[0] for p in prompts]
    assert generate(model, prompts, 8, batch_size=3, device=CPU) == one_by_one


def test_overfit_distance_examples_are_reproduced_through_the_evaluator() -> None:
    rows = build_train_tokens([Part("distance", "standard", 8)], seed=0)
    texts = [decode(r) for r in rows]
    prompts, answers = zip(*(t.split("=") for t in texts), strict=True)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_layer=2, d_model=64, n_head=2, d_mlp=128, max_seq_len=64))
    tc = TrainConfig(batch_size=8, lr=1e-2, warmup_steps=10)
    batcher = Batcher(torch.from_numpy(rows.copy()), 8, seed=0)
    loop = TrainLoop(model, make_optimizer(model, tc, CPU), batcher, tc, 150, PAD, None)
    for step in range(150):
        loop.step(step)
    model.eval()
    completions = generate(model, list(prompts), 20, batch_size=64, device=CPU)
    assert completions == list(answers)
    values, failed = get_task("distance").score(completions, list(answers))
    assert values.tolist() == [0.0] * 8 and not failed.any()
    # and a wrong answer is scored as such: the evaluator is not vacuous
    wrong, _ = get_task("distance").score(["0"] * 8, list(answers))
    assert wrong.tolist() == [float(a) for a in answers]


def test_eval_writes_eval_json_and_events(trained_run: Path) -> None:
    assert eval_main(trained_run) == 0
    report = json.loads((trained_run / "eval.json").read_text())
    with open(trained_run / "config.toml", "rb") as f:
        raw = tomllib.load(f)
    assert report["format"] == 1 and report["name"] == "tiny" and report["seed"] == 7
    assert report["checkpoint"] == "checkpoints/final.pt" and report["step"] == 30
    final_bytes = (trained_run / "checkpoints" / "final.pt").read_bytes()
    assert report["checkpoint_digest"] == hashlib.sha256(final_bytes).hexdigest()
    assert report["config_hash"] == config_hash(raw)
    keys = ["standard/distance", "standard/compass", "atlantis/distance", "atlantis/compass"]
    assert list(report["sets"]) == keys
    for key, s in report["sets"].items():
        assert s["set"] + "/" + s["task"] == key and s["n"] == 8
        assert s["metric"] == get_task(s["task"]).metric
        assert all(math.isfinite(s[k]) for k in ("mean", "median", "std", "parse_failure_rate"))
    assert 0.0 <= report["sets"]["standard/compass"]["mean"] <= 1.0
    evs = [e for e in events(trained_run) if e.get("action") == "eval" or e["event"] == "eval"]
    assert [e["event"] for e in evs] == ["start", "eval", "eval", "eval", "eval", "end"]
    assert [(e["set"], e["done"], e["total"]) for e in evs[1:5]] == [
        (k, i + 1, 4) for i, k in enumerate(keys)
    ]
    assert evs[-1]["reason"] == "finished" and evs[-1]["step"] == 30
    # The run folder's files name its checkpoint relative to it, as eval.json does, whatever path the run
    # was given as: the worker passes an absolute one, and results are shipped from another machine.
    assert trained_run.is_absolute() and evs[0]["checkpoint"] == "checkpoints/final.pt"


def test_eval_of_a_named_checkpoint_with_examples(trained_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(trained_run, run_dir)
    (run_dir / "eval.json").unlink(missing_ok=True)
    cfg = (
        (run_dir / "config.toml")
        .read_text()
        .replace("batch_size = 64", "batch_size = 64\nsave_examples = true")
    )
    (run_dir / "config.toml").write_text(cfg)
    ckpt = run_dir / "checkpoints" / "step-00000020.pt"
    assert eval_main(run_dir, checkpoint=ckpt) == 0
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["checkpoint"] == "checkpoints/step-00000020.pt" and report["step"] == 20
    step_bytes = (run_dir / "checkpoints" / "step-00000020.pt").read_bytes()
    assert report["checkpoint_digest"] == hashlib.sha256(step_bytes).hexdigest()
    lines = [json.loads(x) for x in (run_dir / "eval_examples.jsonl").read_text().splitlines()]
    assert len(lines) == 32 and set(lines[0]) == {
        "set",
        "prompt",
        "answer",
        "completion",
        "value",
        "parse_failed",
    }
    dist = [x for x in lines if x["set"] == "standard/distance"]
    mean = sum(x["value"] for x in dist) / len(dist)
    assert mean == pytest.approx(report["sets"]["standard/distance"]["mean"])


def test_eval_without_a_checkpoint_exits_2_and_writes_only_the_log(tmp_path: Path, data_root: Path) -> None:
    run_dir = write_run(tmp_path / "r", tiny_config(data_root))
    assert eval_main(run_dir) == 2
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.toml", "train.log"]
    assert "checkpoints/final.pt: checkpoint not found" in (run_dir / "train.log").read_text()


def test_eval_of_a_corrupt_checkpoint_exits_1_without_eval_json(tmp_path: Path, data_root: Path) -> None:
    run_dir = write_run(tmp_path / "r", tiny_config(data_root))
    bad = run_dir / "checkpoints" / "final.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"\x00" * 100)
    assert eval_main(run_dir) == 1
    assert not (run_dir / "eval.json").exists()
    err = events(run_dir)[-1]
    assert (
        err["event"] == "error"
        and err["action"] == "eval"
        and "final.pt: not a readable checkpoint" in err["error"]
    )


@pytest.mark.slow
def test_readme_smoke_run_trains_once_and_evaluates_all_14_sets(tmp_path: Path) -> None:
    """The README's hand-written run directory, through the real command line."""
    run_dir = tmp_path / "smoke_run"
    shutil.copytree(SMOKE_DIR, run_dir)
    train = run_engine("train", str(run_dir))
    assert train.returncode == 0, train.stdout + train.stderr
    again = run_engine("train", str(run_dir))
    assert again.returncode == 0 and "the run is finished" in again.stdout
    ev = run_engine("eval", str(run_dir))
    assert ev.returncode == 0, ev.stdout + ev.stderr
    report = json.loads((run_dir / "eval.json").read_text())
    assert len(report["sets"]) == 14
    assert {s["task"] for s in report["sets"].values()} == set(TASKS)
    for s in report["sets"].values():
        assert s["n"] == 32 and math.isfinite(s["mean"]) and 0 <= s["parse_failure_rate"] <= 1
