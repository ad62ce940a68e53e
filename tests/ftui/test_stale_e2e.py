"""Stale results end to end with the REAL engine (smoke size, CPU): train `base`, fine-tune and evaluate
`pair-1` from it, train `base` again with another learning rate: pair-1 is stale in `ftui list --json` and
marked in `ftui heatmap`; `ftui launch --stale` re-runs exactly it, after which it is done again."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ftui.queue.worker import stop_worker
from tests.ftui.queue_helpers import events, list_json, mini_study_with, run_ftui, wait_until

pytestmark = pytest.mark.slow

ENV = os.environ | {"FTUI_WORKER_IDLE_EXIT": "1.5", "FTUI_WORKER_POLL": "0.1", "NO_COLOR": "1"}
# Generous: a smoke run takes seconds, but at nice 19 on a machine busy with training it took minutes (an
# evaluation of 6 x 16 queries took 290 s once). Waiting longer never makes the test pass wrongly.


def ftui(registry: Path, *args: str) -> Any:
    return run_ftui(registry, *args, env=ENV, timeout=300)


def rows(registry: Path) -> dict[str, dict[str, Any]]:
    return list_json(registry, env=ENV, timeout=300)


def final_digest(run_dir: Path) -> str:
    return [e for e in events(run_dir) if e["event"] == "checkpoint"][-1]["digest"]


def settled(registry: Path, *keys: str) -> dict[str, dict[str, Any]] | None:
    """The rows, once every run of `keys` has no open job left (None before)."""
    table = rows(registry)
    busy = ("running", "queued", "waiting")
    return None if any(table[k]["state"] in busy for k in keys) else table


def test_retrained_parent_makes_its_child_stale_until_launch_stale_reruns_it(tmp_path: Path) -> None:
    registry = mini_study_with(tmp_path, {})
    runs = tmp_path / "runs"
    try:
        assert ftui(registry, "launch", "base", "pair-1").returncode == 0
        table = wait_until(
            lambda: settled(registry, "base", "pair-1"), "the first runs", timeout=600, poll=0.5
        )
        assert table["base"]["state"] == table["pair-1"]["state"] == "done"
        first = final_digest(runs / "base")
        assert events(runs / "pair-1")[0]["parent"]["digest"] == first
        assert json.loads((runs / "pair-1" / "eval.json").read_text())["checkpoint_digest"] == final_digest(
            runs / "pair-1"
        )
        assert ftui(registry, "launch", "--stale").stdout.strip() == "no stale run"

        # base trained again (another learning rate, from scratch): pair-1's weights came from the old base
        mini_study_with(tmp_path, {"lr": "2e-3"})
        assert ftui(registry, "launch", "base", "--force").returncode == 0
        wait_until(lambda: settled(registry, "base"), "base's second training", timeout=600, poll=0.5)
        assert final_digest(runs / "base") != first
        table = rows(registry)
        assert table["base"]["state"] == "done" and table["base"]["stale"] == ""
        assert table["pair-1"]["state"] == "stale"
        assert table["pair-1"]["stale"] == "parent base was trained again after this run used it"
        assert table["pair-2"]["state"] == "new"  # never trained: not stale
        listed = run_ftui(registry, "list", env=ENV | {"COLUMNS": "200"}, timeout=300).stdout
        assert "stale" in listed and "parent base was trained again" in listed

        heatmap = ftui(registry, "heatmap", "pair", "--raw")
        assert heatmap.returncode == 0, heatmap.stderr
        line = next(x for x in heatmap.stdout.splitlines() if x.startswith("pair-1"))
        assert line.count("*") == 3  # every cell of the row
        assert "* = stale (pair-1)" in heatmap.stdout

        out = ftui(registry, "launch", "--stale")
        assert out.returncode == 0, out.stderr
        assert (
            "stale: pair-1 (parent base was trained again after this run used it): train + eval" in out.stdout
        )
        assert "queued 2 job(s): pair-1 train, pair-1 eval" in out.stdout
        table = wait_until(lambda: settled(registry, "pair-1"), "pair-1's re-run", timeout=600, poll=0.5)
        assert table["pair-1"]["state"] == "done" and table["pair-1"]["stale"] == ""
        starts = [e for e in events(runs / "pair-1") if e["event"] == "start" and e["action"] == "train"]
        assert len(starts) == 1 and starts[0]["resumed_from_step"] == 0  # from scratch: old events removed
        assert starts[0]["parent"]["digest"] == final_digest(runs / "base")
        assert "*" not in ftui(registry, "heatmap", "pair", "--raw").stdout
        assert ftui(registry, "launch", "--stale").stdout.strip() == "no stale run"
    finally:
        stop_worker(runs)
