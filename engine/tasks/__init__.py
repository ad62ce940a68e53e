"""The seven tasks behind one registry. The names and their order (the study's index order, 1 D ... 7 Cr)
come from `names.toml` beside this file, which ftui reads too; nothing else hard-codes the list."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

from engine.tasks.angle import Angle
from engine.tasks.base import SETS, Task
from engine.tasks.compass import Compass
from engine.tasks.crossing import Crossing
from engine.tasks.distance import Distance
from engine.tasks.inside import Inside
from engine.tasks.perimeter import Perimeter
from engine.tasks.trianglearea import TriangleArea
from engine.world import WorldSpec

NAMES_FILE = Path(__file__).with_name("names.toml")


def _tasks() -> dict[str, Task]:
    implemented = {
        t.name: t for t in (Distance(), TriangleArea(), Angle(), Compass(), Inside(), Perimeter(), Crossing())
    }
    names = tomllib.loads(NAMES_FILE.read_text(encoding="utf-8"))["names"]
    if sorted(names) != sorted(implemented):
        raise RuntimeError(f"{NAMES_FILE} lists {names}, the task modules implement {sorted(implemented)}")
    return {name: implemented[name] for name in names}


TASKS: dict[str, Task] = _tasks()

__all__ = ["SETS", "TASKS", "Task", "get_task", "task_index", "sample_main"]


def get_task(name: str) -> Task:
    """The task called `name`; ValueError listing the allowed names otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task '{name}'; allowed: {', '.join(TASKS)}") from None


def task_index(name: str) -> int:
    """0-based position of a task in the study's order (part of every stream's seed)."""
    get_task(name)
    return list(TASKS).index(name)


def sample_main(task: str, set_name: str, n: int, seed: int, world_spec: WorldSpec | None = None) -> int:
    """`python -m engine sample TASK --set standard|atlantis -n N [--seed S]`: N training examples as JSON
    lines {"task", "text", "prompt", "answer", "city_ids"}. Exit 2 on a bad argument."""
    problems = []
    if task not in TASKS:
        problems.append(f"unknown task '{task}'; allowed: {', '.join(TASKS)}")
    if set_name not in SETS:
        problems.append(f"unknown set '{set_name}'; allowed: {', '.join(SETS)}")
    if n < 0:
        problems.append(f"-n must be >= 0, got {n}")
    if seed < 0:
        problems.append(f"--seed must be >= 0, got {seed}")
    if problems:
        for problem in problems:
            print(f"python -m engine sample: error: {problem}", file=sys.stderr)
        return 2

    from engine.tasks.base import query_city_ids
    from engine.tasks.stream import stream_queries
    from engine.world import load_world

    try:
        world = load_world(world_spec or WorldSpec())
    except ValueError as exc:
        print(f"python -m engine sample: error: {exc}", file=sys.stderr)
        return 2
    t = TASKS[task]
    queries = stream_queries(t, task_index(task), world, set_name, "train", seed, n)
    prompts, answers = t.format(world, queries)
    ids = query_city_ids(world, queries)
    out = []
    for prompt, answer, row in zip(prompts, answers, ids, strict=True):
        city_ids = [f"c_{int(i):04d}" for i in row if i >= 0]
        record = {"task": task, "text": f"{prompt}={answer}", "prompt": prompt, "answer": answer}
        out.append(json.dumps(record | {"city_ids": city_ids}))
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0
