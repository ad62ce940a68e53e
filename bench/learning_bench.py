"""Did the models learn? Every task's metric beside the trivial predictor's, on the same test queries.

    python bench/learning_bench.py RUNS_DIR [--run pt1 --run ftwb1-*] [--json]
    python bench/learning_bench.py RUNS_DIR --run pt1 --checkpoint A.pt --checkpoint B.pt   # a learning curve

For each run folder with an eval.json (pattern-matched on its folder name), the test sets it was evaluated on
are rebuilt from its config.toml (same world, seed and n: the engine's cached recipe) and scored with the
best constant predictor of that very set: the median true answer for error tasks (the constant with the
lowest mean absolute error) and the most frequent class for accuracy tasks. That is a conservative baseline:
no constant does better on those queries.

With --checkpoint, the (one) matching run is evaluated afresh at each checkpoint given (`python -m engine
eval` into a temporary copy of the run folder; the run's own eval.json is not touched), which gives its
learning curve on the same test queries.

For the pretraining run, the laptop targets of issue 14 are checked on the standard sets (ratio = model /
trivial for errors): distance, trianglearea, perimeter <= 0.5; angle <= 0.7; compass >= 0.6; inside and
crossing >= 0.7. Fine-tunes print their atlantis rows too, where Atlantis is learned.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.config import load_config  # noqa: E402
from engine.data import eval_sets  # noqa: E402
from engine.tasks import get_task  # noqa: E402

# Issue 14's bar for the laptop profile's pt1, on the standard test sets.
ERROR_TARGETS = {"distance": 0.5, "trianglearea": 0.5, "perimeter": 0.5, "angle": 0.7}
ACCURACY_TARGETS = {"compass": 0.6, "inside": 0.7, "crossing": 0.7}


def trivial_score(task_name: str, answers: list[str]) -> float:
    """The best constant predictor's metric on these answers (MAE of the median, or majority accuracy)."""
    task = get_task(task_name)
    truth = np.array([task.parse(a) for a in answers], dtype=np.float64)
    if task.metric == "accuracy":
        _, counts = np.unique(truth, return_counts=True)
        return float(counts.max() / len(truth))
    return float(np.abs(truth - np.median(truth)).mean())


def target_verdict(task_name: str, value: float, trivial: float) -> tuple[str, str]:
    """(the target, "ok" | "MISS") of a pretraining run's standard set; ("", "") if the task has none."""
    if task_name in ERROR_TARGETS:
        bar = ERROR_TARGETS[task_name]
        return f"<= {bar}x trivial", "ok" if value <= bar * trivial else "MISS"
    if task_name in ACCURACY_TARGETS:
        bar = ACCURACY_TARGETS[task_name]
        return f">= {bar}", "ok" if value >= bar else "MISS"
    return "", ""


def run_rows(run_dir: Path, report: dict | None = None, label: str | None = None) -> list[dict[str, object]]:
    cfg = load_config(run_dir)
    report = report or json.loads((run_dir / "eval.json").read_text())
    ec = cfg.eval
    sets = eval_sets(list(ec.tasks), list(ec.sets), ec.n, ec.seed, cfg.data_root_path(run_dir), cfg.world)
    rows: list[dict[str, object]] = []
    for es in sets:
        result = report["sets"].get(es.key)
        if result is None:
            continue
        trivial = trivial_score(es.task, es.answers)
        value = float(result["mean"])
        metric = get_task(es.task).metric
        ratio = value / trivial if metric == "abs_error" and trivial > 0 else None
        target, verdict = ("", "")
        if cfg.kind == "pretrain" and es.set == "standard":
            target, verdict = target_verdict(es.task, value, trivial)
        rows.append(
            {
                "run": label or run_dir.name,
                "set": es.key,
                "metric": "MAE" if metric == "abs_error" else "accuracy",
                "model": value,
                "trivial": trivial,
                "ratio": ratio,
                "parse_failures": float(result.get("parse_failure_rate", 0.0)),
                "target": target,
                "verdict": verdict,
            }
        )
    return rows


def evaluate_checkpoint(run_dir: Path, checkpoint: Path) -> dict:
    """eval.json of `run_dir`'s config at `checkpoint`, made in a temporary copy of the run folder."""
    raw = tomllib.loads((run_dir / "config.toml").read_text())
    data_root = Path(raw.get("data_root", "../.data"))
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / run_dir.name
        copy.mkdir()
        text = (run_dir / "config.toml").read_text()
        absolute = data_root if data_root.is_absolute() else (run_dir / data_root).resolve()
        text = text.replace(f'data_root = "{raw.get("data_root", "../.data")}"', f'data_root = "{absolute}"')
        (copy / "config.toml").write_text(text)
        shutil.copy(checkpoint, copy / "checkpoint.pt")
        cmd = [sys.executable, "-m", "engine", "eval", str(copy), "--checkpoint", str(copy / "checkpoint.pt")]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"evaluating {checkpoint} failed ({done.returncode}): {done.stderr[-2000:]}")
        return json.loads((copy / "eval.json").read_text())


def find_runs(runs_dir: Path, patterns: list[str]) -> list[Path]:
    found = sorted(p.parent for p in runs_dir.glob("**/eval.json") if (p.parent / "config.toml").is_file())
    if not patterns:
        return found
    return [
        d for d in found if any(fnmatch.fnmatchcase(str(d.relative_to(runs_dir)), pat) for pat in patterns)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--run", action="append", default=[], help="run folder pattern (repeatable)")
    parser.add_argument(
        "--checkpoint", action="append", type=Path, default=[],
        help="evaluate the matching run at this checkpoint (repeatable: a learning curve)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    runs = find_runs(args.runs_dir, args.run)
    if not runs:
        print(f"no evaluated runs under {args.runs_dir}", file=sys.stderr)
        return 1
    if args.checkpoint:
        if len(runs) != 1:
            print(f"--checkpoint needs exactly one run; --run matches {len(runs)}", file=sys.stderr)
            return 2
        rows = []
        for ck in args.checkpoint:
            rows += run_rows(runs[0], evaluate_checkpoint(runs[0], ck), label=ck.stem)
    else:
        rows = [row for run in runs for row in run_rows(run)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'run':<16} {'set':<24} {'metric':<8} {'model':>11} {'trivial':>11} {'ratio':>6} "
          f"{'parse fail':>10}  target")  # fmt: skip
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else ""
        print(
            f"{r['run']!s:<16} {r['set']!s:<24} {r['metric']!s:<8} {r['model']:>11.3f} {r['trivial']:>11.3f} "
            f"{ratio:>6} {r['parse_failures']:>10.3f}  {r['target']} {r['verdict']}"
        )
    misses = [r for r in rows if r["verdict"] == "MISS"]
    checked = [r for r in rows if r["verdict"]]
    if checked:
        print(f"\npretraining targets met: {len(checked) - len(misses)} of {len(checked)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
