"""What the stale rule costs `ftui list` / the app's refresh: `list_rows` over every run of a large study
whose runs are all trained and evaluated with lineage recorded (the worst case: every fine-tune is judged),
with the rule on and with it off, cold (first read of every file) and warm (the app's once-a-second refresh:
stats).

    python bench/stale_bench.py [--seeds 720]     # 7 runs per seed: 5,040 runs

Prints medians and the ratio on/off; nothing is asserted (timings belong here, not in tests).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ftui.queue.store import Store  # noqa: E402
from ftui.registry import load_registry  # noqa: E402
from ftui.staleness import StaleRuns  # noqa: E402
from ftui.status import list_rows  # noqa: E402

MINI = REPO / "tests" / "data" / "mini_study.toml"


def big_study(root: Path, seeds: int) -> Path:
    """The mini study with `seeds` seeds; every run trained and evaluated, its lineage recorded; every tenth
    seed's `base` trained again after its children used it (so some runs are stale)."""
    text = re.sub(r"^seeds = .*$", f"seeds = {list(range(1, seeds + 1))}", MINI.read_text(), flags=re.M)
    path = root / "experiments.toml"
    path.write_text(text)
    registry = load_registry(path)
    for run in registry.all_runs():
        folder = root / "runs" / run.rel_dir
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "final.pt").write_bytes(b"w")
        parent = {"parent": {"path": "../base/checkpoints/final.pt", "digest": f"{run.parent_key}-1"}}
        lineage = parent if run.parent_key else {}
        final = {"event": "checkpoint", "path": "checkpoints/final.pt", "digest": f"{run.key}-1", **lineage}
        if run.parent_key is None and run.seed % 10 == 0:
            final["digest"] = f"{run.key}-2"
        steps = [{"event": "step", "step": s, "total_steps": 100, "loss": 1.0} for s in range(0, 100, 5)]
        records = [{"event": "start", "action": "train", **lineage}, *steps, final, {"event": "end"}]
        (folder / "events.jsonl").write_text("".join(json.dumps({"t": 1.0, **r}) + "\n" for r in records))
        report = {"checkpoint": "checkpoints/final.pt", "checkpoint_digest": final["digest"], "sets": {}}
        (folder / "eval.json").write_text(json.dumps(report))
    return path


def timed(registry_path: Path, repeat: int, stale_on: bool) -> tuple[float, float, int]:
    """(cold s, warm median s, stale rows) of list_rows over every run, with a fresh store."""
    registry = load_registry(registry_path)
    store = Store(registry_path.parent / "runs")
    runs = registry.all_runs()
    patch = mock.patch.object(StaleRuns, "check", lambda self, key: None) if not stale_on else None
    if patch is not None:
        patch.start()
    try:
        t0 = time.perf_counter()
        rows = list_rows(registry, store, runs)
        cold = time.perf_counter() - t0
        warm = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            rows = list_rows(registry, store, runs)
            warm.append(time.perf_counter() - t0)
    finally:
        if patch is not None:
            patch.stop()
        store.close()
    return cold, statistics.median(warm), sum(r.state == "stale" for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=720, help="seeds (7 runs per seed)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = big_study(Path(tmp), args.seeds)
        off = timed(path, args.repeat, stale_on=False)
        on = timed(path, args.repeat, stale_on=True)
    print(f"{args.seeds * 7:,} runs, {on[2]} stale")
    print(f"rule off: cold {off[0] * 1000:.0f} ms, warm {off[1] * 1000:.0f} ms")
    print(f"rule on:  cold {on[0] * 1000:.0f} ms, warm {on[1] * 1000:.0f} ms")
    print(f"ratio on/off: cold {on[0] / off[0]:.2f}x, warm {on[1] / off[1]:.2f}x")


if __name__ == "__main__":
    main()
