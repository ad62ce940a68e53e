"""Generate `eval.json` fixture run folders from KNOWN normalised matrices (not hand-typed numbers).

Every fine-tuned run gets the values of a closed-form "true" matrix (below), converted to raw metrics by
inverting the `perfect` normalisation against the baseline run of the same seed, so that reading the folders
back must give exactly `known_value(...)`. The analysis tests use it into `tmp_path`; the app tests and a
person trying the tool can use it from the command line:

    python tests/data/make_eval_fixtures.py --registry experiments.toml --runs /tmp/fixture-runs

The true matrix (perfect scheme, atlantis sets; index i of a task = its place in the study's task list):
- single-task row of task t, column j: 0.78 + 0.03 * i(t) on its own task;
  transfer 0.05 + 0.4 * ((3*i(t) + 5*j) mod 7) / 6;
  plus 0.01 * (seed index) so averaging over seeds is visible.
- multi-task row with task set S, column j: the best teacher max_{t in S} single(t, j), then -0.05 on trained
  cells, and on transfer cells -0.30 when S contains the DIVERGENT task (the first study task, as distance is
  in the paper) else +0.02; warm-up experiments get +0.03 everywhere. Clipped to [0, 1].
- standard sets: 0.5 + 0.4 * (the atlantis value - 0.5), normalised against the baseline's standard value.
Baseline raw values: error tasks b_atl = 400 * (i + 1), b_std = b_atl / 8; accuracy tasks b_atl = 0.30,
b_std = 0.90 (a task is an accuracy task when its name is in ACCURACY_TASKS).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ACCURACY_TASKS = frozenset({"compass", "inside", "crossing"})


@dataclass(frozen=True)
class FixtureRun:
    """One run folder to generate: experiment, its trained tasks (empty for a baseline), seed, folder."""

    experiment: str
    tasks: tuple[str, ...]
    seed: int
    rel_dir: str
    warmup: bool = False


def metric_of(task: str) -> str:
    return "accuracy" if task in ACCURACY_TASKS else "abs_error"


def baseline_value(task: str, index: int, set_name: str) -> float:
    if metric_of(task) == "accuracy":
        return 0.30 if set_name == "atlantis" else 0.90
    atlantis = 400.0 * (index + 1)
    return atlantis if set_name == "atlantis" else atlantis / 8


def single_value(task_index: int, column: int, seed_index: int) -> float:
    if task_index == column:
        return 0.78 + 0.03 * task_index + 0.01 * seed_index
    base = 0.05 + 0.4 * ((3 * task_index + 5 * column) % 7) / 6
    return base + 0.01 * seed_index


def known_value(
    row_tasks: Sequence[str], column: int, seed_index: int, study_tasks: Sequence[str], warmup: bool = False
) -> float:
    """The true normalised value (perfect scheme, atlantis sets) of a row trained on `row_tasks`."""
    indices = [study_tasks.index(task) for task in row_tasks]
    value = max(single_value(i, column, seed_index) for i in indices)
    if len(indices) > 1:
        if column in indices:
            value -= 0.05
        elif 0 in indices:
            value -= 0.30
        else:
            value += 0.02
    if warmup:
        value += 0.03
    return min(max(value, 0.0), 1.0)


def known_standard(atlantis_value: float) -> float:
    return 0.5 + 0.4 * (atlantis_value - 0.5)


def raw_from_perfect(normalised: float, baseline: float, metric: str) -> float:
    """Invert the perfect normalisation: error v = b (1 - N); accuracy v = b + N (1 - b)."""
    if metric == "abs_error":
        return baseline * (1.0 - normalised)
    return baseline + normalised * (1.0 - baseline)


def write_eval_json(run_dir: Path, name: str, seed: int, sets: dict[str, tuple[str, str, float]]) -> Path:
    """Write an eval.json in the engine's format; `sets` maps "atlantis/<task>" -> (task, metric, mean)."""
    entries = {}
    for key, (task, metric, mean) in sets.items():
        set_name = key.split("/", 1)[0]
        entries[key] = {
            "task": task,
            "set": set_name,
            "metric": metric,
            "mean": mean,
            "median": mean,
            "std": 0.0,
            "n": 16,
            "parse_failure_rate": 0.0,
        }
    data = {
        "format": 1,
        "name": name,
        "seed": seed,
        "checkpoint": "checkpoints/final.pt",
        "step": 8,
        "config_hash": "fixture",
        "created": 1795000000.0,
        "sets": entries,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "eval.json"
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def write_fixtures(
    runs_dir: Path,
    runs: Iterable[FixtureRun],
    study_tasks: Sequence[str],
    seeds: Sequence[int],
    *,
    skip: Iterable[tuple[str, int]] = (),
    corrupt: Iterable[tuple[str, int]] = (),
) -> list[Path]:
    """Write eval.json for each run (a run with no tasks is a baseline); returns the files written.

    `skip`: (experiment, seed) pairs left without eval.json (unfinished runs). `corrupt`: pairs whose
    eval.json is cut off half-way (a torn write). Seed index = the seed's place in `seeds`.
    """
    skipped, corrupted = set(skip), set(corrupt)
    written: list[Path] = []
    for run in runs:
        if (run.experiment, run.seed) in skipped:
            continue
        seed_index = list(seeds).index(run.seed)
        sets: dict[str, tuple[str, str, float]] = {}
        for j, task in enumerate(study_tasks):
            metric = metric_of(task)
            for set_name in ("atlantis", "standard"):
                base = baseline_value(task, j, set_name)
                if not run.tasks:
                    mean = base
                else:
                    value = known_value(run.tasks, j, seed_index, study_tasks, run.warmup)
                    normalised = value if set_name == "atlantis" else known_standard(value)
                    mean = raw_from_perfect(normalised, base, metric)
                sets[f"{set_name}/{task}"] = (task, metric, mean)
        path = write_eval_json(runs_dir / run.rel_dir, run.experiment, run.seed, sets)
        if (run.experiment, run.seed) in corrupted:
            text = path.read_text(encoding="utf-8")
            path.write_text(text[: len(text) // 2], encoding="utf-8")
        written.append(path)
    return written


def registry_fixture_runs(registry: object) -> list[FixtureRun]:
    """Every run of the registry's heatmap baselines and heatmap families (and their prediction sources)."""
    heatmaps = registry.heatmaps  # type: ignore[attr-defined]
    baselines = {h.baseline for h in heatmaps}
    families = {h.family for h in heatmaps} | {h.predict_from for h in heatmaps if h.predict_from}
    members = {name for family in families for name in registry.families[family]}  # type: ignore[attr-defined]
    runs = []
    for run in registry.runs():  # type: ignore[attr-defined]
        experiment = run.experiment
        if experiment.name in baselines:
            runs.append(FixtureRun(experiment.name, (), run.seed, run.rel_dir))
        elif experiment.name in members:
            runs.append(
                FixtureRun(experiment.name, experiment.tasks, run.seed, run.rel_dir, experiment.warmup)
            )
    return runs


def make_fixtures(
    registry_path: Path,
    runs_dir: Path,
    *,
    skip: Iterable[tuple[str, int]] = (),
    corrupt: Iterable[tuple[str, int]] = (),
) -> list[Path]:
    """Generate the fixtures of every heatmap of a registry file into `runs_dir`."""
    from ftui.registry import load_registry

    registry = load_registry(registry_path)
    study_tasks = [task.name for task in registry.study.tasks]
    runs = registry_fixture_runs(registry)
    seeds = list(dict.fromkeys(seed for experiment in registry.experiments for seed in experiment.seeds))
    return write_fixtures(runs_dir, runs, study_tasks, seeds, skip=skip, corrupt=corrupt)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write eval.json fixtures for every heatmap of a registry.")
    parser.add_argument("--registry", type=Path, default=Path("experiments.toml"))
    parser.add_argument("--runs", type=Path, required=True, help="runs folder to write into")
    parser.add_argument("--skip", action="append", default=[], help="EXPERIMENT:SEED to leave unfinished")
    args = parser.parse_args(argv)
    skip = [(item.rsplit(":", 1)[0], int(item.rsplit(":", 1)[1])) for item in args.skip]
    written = make_fixtures(args.registry, args.runs, skip=skip)
    print(f"wrote {len(written)} eval.json files under {args.runs}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
