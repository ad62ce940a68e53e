"""Training end to end on the CPU at tiny sizes: files, events, loss, resume, fine-tuning, failures, CLI."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from torch import Tensor

from engine.batching import Batcher
from engine.checkpoint import load_checkpoint
from engine.train import StopFlag, run_training
from tests.engine.train_helpers import (
    engine_cmd,
    engine_env,
    events,
    one_torch_thread,  # noqa: F401 (autouse fixture)
    run_engine,
    tiny_config,
    write_run,
)

# 160 rows / batch 16 = 10 steps per epoch; 4 epochs = 40 steps.
STEPS = 40


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> tuple[Path, dict[int, Tensor]]:
    """One uninterrupted 40-step run, with the batch of every step recorded."""
    run_dir = write_run(tmp_path_factory.mktemp("runs") / "tiny", tiny_config(data_root, train={"epochs": 4}))
    batches: dict[int, Tensor] = {}
    assert run_training(run_dir, on_batch=lambda s, b: batches.__setitem__(s, b.clone())) == 0
    return run_dir, batches


def test_run_writes_exactly_the_contract_files_and_events(trained: tuple[Path, dict[int, Tensor]]) -> None:
    run_dir, batches = trained
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints",
        "config.toml",
        "events.jsonl",
        "train.log",
    ]
    # checkpoints every 10 steps, newest 2 kept; the last step writes final.pt instead
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["final.pt", "step-00000020.pt", "step-00000030.pt"]

    evs = events(run_dir)
    names = [e["event"] for e in evs]
    assert names[0] == "start" and names[-1] == "end"
    start, end = evs[0], evs[-1]
    assert (
        start["action"] == "train" and start["resumed_from_step"] == 0 and start["device"].startswith("cpu")
    )
    assert start["config"]["name"] == "tiny" and set(start["versions"]) >= {"python", "torch", "engine"}
    assert end == {**end, "action": "train", "reason": "finished", "step": STEPS}
    steps = [e for e in evs if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(5, STEPS + 1, 5))
    for e in steps:
        assert e["total_steps"] == STEPS and set(e) >= {"epoch", "loss", "lr", "tokens_per_s", "eta_s"}
    assert [e["step"] for e in evs if e["event"] == "checkpoint"] == [10, 20, 30, STEPS]
    # each checkpoint event carries the sha256 of the file's bytes, so ftui never hashes checkpoints
    final_event = [e for e in evs if e["event"] == "checkpoint"][-1]
    final_bytes = (run_dir / "checkpoints" / "final.pt").read_bytes()
    assert final_event["path"] == "checkpoints/final.pt"
    assert final_event["digest"] == hashlib.sha256(final_bytes).hexdigest()
    assert "parent" not in start and "parent" not in final_event  # a pretraining run has none
    assert steps[-1]["epoch"] == 4.0

    # the loss goes down on the fixed tasks
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.5, [e["loss"] for e in steps]

    log = (run_dir / "train.log").read_text()
    for header in ("argv:", "versions:", "device:", "config:", "finished: 40 steps"):
        assert header in log

    state = load_checkpoint(run_dir / "checkpoints" / "final.pt")
    assert state["step"] == STEPS and state["epoch"] == 4 and state["model_config"]["d_model"] == 32
    assert set(state) >= {"model", "optimizer", "config", "rng", "version"}
    assert sorted(batches) == list(range(STEPS)) and batches[0].shape[0] == 16


def test_every_row_is_seen_once_per_epoch_in_a_new_order() -> None:
    tokens = torch.arange(50, dtype=torch.uint8)[:, None].repeat(1, 3)
    batcher = Batcher(tokens, batch_size=8, seed=3)
    assert batcher.steps_per_epoch == 6  # the last partial batch (2 rows) is dropped
    epoch0 = torch.cat([batcher.indices(s) for s in range(6)])
    epoch1 = torch.cat([batcher.indices(s) for s in range(6, 12)])
    assert len(set(epoch0.tolist())) == 48 and not torch.equal(epoch0, epoch1)
    # a pure function of the step: a fresh batcher asked out of order agrees
    other = Batcher(tokens, batch_size=8, seed=3)
    assert torch.equal(other.batch(9), batcher.batch(9)) and torch.equal(other.batch(2), batcher.batch(2))
    assert not torch.equal(Batcher(tokens, 8, seed=4).indices(0), batcher.indices(0))


def test_stop_and_resume_reproduce_the_uninterrupted_run(
    tmp_path: Path, data_root: Path, trained: tuple[Path, dict[int, Tensor]]
) -> None:
    ref_dir, ref_batches = trained
    run_dir = write_run(tmp_path / "tiny", tiny_config(data_root, train={"epochs": 4}))
    first: dict[int, Tensor] = {}
    code = run_training(run_dir, stop_after=13, on_batch=lambda s, b: first.__setitem__(s, b.clone()))
    assert code == 128 + signal.SIGTERM
    evs = events(run_dir)
    assert evs[-1]["event"] == "end" and evs[-1]["reason"] == "terminated" and evs[-1]["step"] == 13
    assert evs[-2] == {**evs[-2], "event": "checkpoint", "step": 13, "path": "checkpoints/step-00000013.pt"}
    assert not (run_dir / "checkpoints" / "final.pt").exists()

    # a change that does not touch the data order or the model: resumed, with a warning naming it
    write_run(run_dir, tiny_config(data_root, train={"epochs": 4, "log_every_steps": 4}))
    second: dict[int, Tensor] = {}
    assert run_training(run_dir, on_batch=lambda s, b: second.__setitem__(s, b.clone())) == 0
    log = (run_dir / "train.log").read_text()
    assert "warning: config.toml changed since that checkpoint: train.log_every_steps" in log
    restart = [e for e in events(run_dir) if e["event"] == "start"][-1]
    assert restart["resumed_from_step"] == 13
    assert sorted(first) == list(range(13)) and sorted(second) == list(range(13, STEPS))
    for s in range(STEPS):  # the very same batches, step for step
        assert torch.equal((first | second)[s], ref_batches[s]), s
    ours = load_checkpoint(run_dir / "checkpoints" / "final.pt")["model"]
    ref = load_checkpoint(ref_dir / "checkpoints" / "final.pt")["model"]
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


def test_finished_run_is_not_retrained_unless_restart(tmp_path: Path, data_root: Path) -> None:
    run_dir = write_run(tmp_path / "r", tiny_config(data_root, train={"max_steps": 3}))
    assert run_training(run_dir) == 0
    final = run_dir / "checkpoints" / "final.pt"
    mtime = final.stat().st_mtime_ns
    assert run_training(run_dir) == 0
    assert events(run_dir)[-1] == {**events(run_dir)[-1], "reason": "already_finished", "step": 3}
    assert final.stat().st_mtime_ns == mtime
    assert run_training(run_dir, restart=True) == 0
    evs = events(run_dir)
    assert evs[0]["event"] == "start" and evs[0]["resumed_from_step"] == 0  # old events were discarded
    assert final.stat().st_mtime_ns != mtime


def test_finetune_starts_from_the_parent_weights(
    tmp_path: Path, data_root: Path, trained: tuple[Path, dict[int, Tensor]]
) -> None:
    parent_dir, _ = trained
    parent = parent_dir / "checkpoints" / "final.pt"
    cfg = tiny_config(data_root, kind="finetune", parent=str(parent), train={"max_steps": 1, "lr": 1e-9})
    run_dir = write_run(tmp_path / "ft", cfg)
    assert run_training(run_dir) == 0
    ours = load_checkpoint(run_dir / "checkpoints" / "final.pt")
    theirs = load_checkpoint(parent)
    assert all(torch.allclose(ours["model"][k], theirs["model"][k], atol=1e-6) for k in theirs["model"])
    # a fresh optimizer: one step of state, not the parent's 40
    assert all(int(s["step"]) == 1 for s in ours["optimizer"]["state"].values())
    assert f"initialised from parent {parent}" in (run_dir / "train.log").read_text()
    # the lineage: which parent checkpoint (path as configured, digest of its bytes) the weights came from
    lineage = {"path": str(parent), "digest": hashlib.sha256(parent.read_bytes()).hexdigest()}
    evs = events(run_dir)
    assert evs[0]["event"] == "start" and evs[0]["parent"] == lineage
    final = [e for e in evs if e["event"] == "checkpoint"][-1]
    assert final["path"] == "checkpoints/final.pt" and final["parent"] == lineage
    assert ours["parent"] == lineage
    assert f"parent checkpoint digest: sha256 {lineage['digest']}" in (run_dir / "train.log").read_text()


def test_resumed_finetune_keeps_the_lineage_of_its_checkpoint(
    tmp_path: Path, data_root: Path, trained: tuple[Path, dict[int, Tensor]]
) -> None:
    """A fine-tune resumed after its parent was trained again continues the weights of the old parent, so it
    keeps recording the old digest (and ftui marks it stale)."""
    parent_dir = tmp_path / "pt"
    parent_dir.mkdir()
    parent = parent_dir / "final.pt"
    parent.write_bytes((trained[0] / "checkpoints" / "final.pt").read_bytes())
    old = hashlib.sha256(parent.read_bytes()).hexdigest()
    cfg = tiny_config(data_root, kind="finetune", parent=str(parent), train={"max_steps": 4})
    run_dir = write_run(tmp_path / "ft", cfg)
    assert run_training(run_dir, stop_after=2) == 128 + signal.SIGTERM
    parent.write_bytes((trained[0] / "checkpoints" / "step-00000030.pt").read_bytes())  # "retrained"
    assert run_training(run_dir) == 0
    starts = [e for e in events(run_dir) if e["event"] == "start"]
    assert [s["resumed_from_step"] for s in starts] == [0, 2]
    assert [s["parent"]["digest"] for s in starts] == [old, old]
    assert [e for e in events(run_dir) if e["event"] == "checkpoint"][-1]["parent"]["digest"] == old


def test_missing_parent_is_a_config_error_that_writes_only_the_log(tmp_path: Path, data_root: Path) -> None:
    run_dir = write_run(tmp_path / "ft", tiny_config(data_root, kind="finetune", parent="../pt1/final.pt"))
    assert run_training(run_dir) == 2
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.toml", "train.log"]
    log = (run_dir / "train.log").read_text()
    assert "config.toml: parent: checkpoint" in log and "pt1/final.pt not found" in log


def test_corrupt_parent_is_a_runtime_error_before_any_work(tmp_path: Path, data_root: Path) -> None:
    bad = tmp_path / "parent.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip file")
    run_dir = write_run(tmp_path / "ft", tiny_config(data_root, kind="finetune", parent=str(bad)))
    assert run_training(run_dir) == 1
    evs = events(run_dir)
    assert [e["event"] for e in evs] == ["error"]
    assert evs[0]["error"].startswith(f"CheckpointError: {bad}: not a readable checkpoint")
    assert not (run_dir / "checkpoints").exists()


def test_parent_of_another_shape_is_refused(
    tmp_path: Path, data_root: Path, trained: tuple[Path, dict[int, Tensor]]
) -> None:
    parent = trained[0] / "checkpoints" / "final.pt"
    cfg = tiny_config(data_root, kind="finetune", parent=str(parent), model={"d_mlp": 48})
    run_dir = write_run(tmp_path / "ft", cfg)
    assert run_training(run_dir) == 1
    assert "model.d_mlp: 64 there, 48 here" in events(run_dir)[-1]["error"]


def test_corrupt_resume_checkpoint_fails_clearly(
    tmp_path: Path, data_root: Path, trained: tuple[Path, dict[int, Tensor]]
) -> None:
    run_dir = write_run(tmp_path / "r", tiny_config(data_root, train={"epochs": 4}))
    good = (trained[0] / "checkpoints" / "step-00000030.pt").read_bytes()
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "step-00000030.pt").write_bytes(good[: len(good) // 2])  # a truncated copy
    assert run_training(run_dir) == 1
    err = events(run_dir)[-1]
    assert err["event"] == "error" and "step-00000030.pt: not a readable checkpoint" in err["error"]
    assert "Traceback" in err["traceback"]
    assert not (run_dir / "checkpoints" / "final.pt").exists()


def test_sigint_flag_stops_like_sigterm(tmp_path: Path, data_root: Path) -> None:
    run_dir = write_run(tmp_path / "r", tiny_config(data_root))
    stop = StopFlag(signum=signal.SIGINT)  # already requested: stops before the first step
    assert run_training(run_dir, stop=stop) == 128 + signal.SIGINT
    assert events(run_dir)[-1]["reason"] == "terminated" and events(run_dir)[-1]["step"] == 0
    assert not (run_dir / "checkpoints").exists()  # nothing to save before the first step


@pytest.mark.slow
def test_cli_bad_config_exits_2_and_writes_only_the_message(tmp_path: Path, data_root: Path) -> None:
    run_dir = write_run(tmp_path / "r", tiny_config(data_root, train={"lr_max": 1.0}))
    proc = run_engine("train", str(run_dir))
    assert proc.returncode == 2, proc.stderr
    assert "train.lr_max: unknown key" in proc.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.toml", "train.log"]
    assert "train.lr_max: unknown key" in (run_dir / "train.log").read_text()


@pytest.mark.slow
def test_cli_sigterm_saves_a_checkpoint_and_the_next_run_resumes(tmp_path: Path, data_root: Path) -> None:
    cfg = tiny_config(data_root, train={"epochs": 20, "log_every_steps": 2, "checkpoint_every": 1000})
    run_dir = write_run(tmp_path / "r", cfg)
    proc = subprocess.Popen(
        engine_cmd("train", str(run_dir)), env=engine_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 90
        while not any(e["event"] == "step" for e in _complete_events(run_dir)):
            assert proc.poll() is None and time.monotonic() < deadline, "no step event"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        proc.kill()
        proc.wait()
    evs = events(run_dir)
    end = evs[-1]
    assert end["event"] == "end" and end["reason"] == "terminated" and 0 < end["step"] < 200
    stopped_at = end["step"]
    assert (run_dir / "checkpoints" / f"step-{stopped_at:08d}.pt").exists()

    # the runner's way: stdout and stderr appended to train.log; each line must land there once
    with open(run_dir / "train.log", "a") as out:
        code = subprocess.run(
            engine_cmd("train", str(run_dir)), env=engine_env(), stdout=out, stderr=out, timeout=120
        ).returncode
    assert code == 0
    starts = [e for e in events(run_dir) if e["event"] == "start"]
    assert starts[-1]["resumed_from_step"] == stopped_at
    assert events(run_dir)[-1]["reason"] == "finished" and events(run_dir)[-1]["step"] == 200
    log = (run_dir / "train.log").read_text()
    assert log.count(f"resumed from {run_dir / 'checkpoints'}") == 1
    assert log.count("finished: 200 steps") == 1


def _complete_events(run_dir: Path) -> list[dict]:
    try:
        return events(run_dir)
    except ValueError:  # a torn last line while the engine writes
        return []


def test_no_stray_temp_files(trained: tuple[Path, dict[int, Tensor]]) -> None:
    run_dir = trained[0]
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
    assert os.access(run_dir / "checkpoints" / "final.pt", os.R_OK)
