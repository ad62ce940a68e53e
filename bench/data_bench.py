"""Data generation speed: each task's vectorised generator + tokenisation against a straightforward per-row
Python reference of the same task, and the full paper-size pretraining set (7 x 1,000,000 rows).

    .venv/bin/python bench/data_bench.py            # everything (about a minute)
    .venv/bin/python bench/data_bench.py --quick    # skip the 7M-row build
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data import Part, train_set  # noqa: E402
from engine.tasks import TASKS, task_index  # noqa: E402
from engine.tasks.stream import stream_queries  # noqa: E402
from engine.tokenizer import BOS, EOS, PAD, TOKENS  # noqa: E402
from engine.world import World, load_world  # noqa: E402

Point = tuple[int, int]
TOKEN_OF = {ch: i for i, ch in enumerate(TOKENS) if len(ch) == 1}
DIRECTIONS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")


# ---- the per-row reference: Python's random, f-strings, math, a dict per character ----------------------
def _orient(o: Point, a: Point, b: Point) -> int:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _dist(p: Point, q: Point) -> float:
    return math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2)


def _inside(t: Point, hull: list[Point]) -> bool:
    for i in range(len(hull)):
        for j in range(i + 1, len(hull)):
            for k in range(j + 1, len(hull)):
                a, b, c = hull[i], hull[j], hull[k]
                if _orient(a, b, c) == 0:
                    continue
                d = (_orient(a, b, t), _orient(b, c, t), _orient(c, a, t))
                if min(d) >= 0 or max(d) <= 0:
                    return True
    return False


def reference_row(name: str, pts: list[Point], ids: list[str]) -> tuple[str, str]:
    if name == "distance":
        return f"dist({ids[0]},{ids[1]})", str(round(_dist(pts[0], pts[1])))
    if name == "trianglearea":
        return f"triarea({','.join(ids)})", str(round(abs(_orient(*pts)) / 2))
    if name == "angle":
        a, b, c = pts
        u, v = (a[0] - b[0], a[1] - b[1]), (c[0] - b[0], c[1] - b[1])
        deg = (
            0
            if u == (0, 0) or v == (0, 0)
            else round(math.degrees(math.atan2(abs(u[0] * v[1] - u[1] * v[0]), u[0] * v[0] + u[1] * v[1])))
        )
        return f"angle({','.join(ids)})", str(deg)
    if name == "compass":
        dx, dy = pts[1][0] - pts[0][0], pts[1][1] - pts[0][1]
        deg = math.degrees(math.atan2(dy, dx)) % 360
        return f"compass({ids[0]},{ids[1]})", "N" if dx == dy == 0 else DIRECTIONS[
            int((deg + 22.5) % 360 // 45)
        ]
    if name == "inside":
        return f"inside({ids[0]};{','.join(ids[1:])})", "TRUE" if _inside(pts[0], pts[1:]) else "FALSE"
    if name == "perimeter":
        n = len(pts)
        total = _dist(pts[0], pts[1]) if n == 2 else sum(_dist(pts[i], pts[(i + 1) % n]) for i in range(n))
        return f"perimeter({','.join(ids)})", str(round(total))
    a, b, c, d = pts
    strict = _orient(a, b, c) * _orient(a, b, d) < 0 and _orient(c, d, a) * _orient(c, d, b) < 0
    return f"cross({ids[0]},{ids[1]};{ids[2]},{ids[3]})", "TRUE" if strict else "FALSE"


def reference_generate(world: World, name: str, n: int, seed: int) -> np.ndarray:
    """n standard-set training rows of one task, one Python iteration per row, tokenised per character."""
    rng = random.Random(seed)
    task = TASKS[name]
    xs, ys, cid = world.x.tolist(), world.y.tolist(), [f"c_{i:04d}" for i in world.city_id.tolist()]
    rows: list[list[int]] = []
    want = {"TRUE": n // 2, "FALSE": n - n // 2} if task.balanced else None
    while len(rows) < n:
        count = rng.randint(task.min_cities, task.max_cities)
        cities = rng.sample(range(world.n_real), count)
        prompt, answer = reference_row(name, [(xs[c], ys[c]) for c in cities], [cid[c] for c in cities])
        if want is not None:
            if want[answer] == 0:
                continue
            want[answer] -= 1
        rows.append([BOS, *(TOKEN_OF[ch] for ch in f"{prompt}={answer}"), EOS])
    width = max(map(len, rows))
    return np.array([r + [PAD] * (width - len(r)) for r in rows], dtype=np.uint8)


def rate(fn: Callable[[], object], rows: int) -> float:
    start = time.perf_counter()
    fn()
    return rows / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="skip the 7M-row pretraining build")
    parser.add_argument("--ref-rows", type=int, default=20_000)
    parser.add_argument("--vec-rows", type=int, default=500_000)
    args = parser.parse_args()
    world = load_world()
    print(f"{'task':<13}{'reference rows/s':>18}{'vectorised rows/s':>19}{'ratio':>8}")
    for name in TASKS:
        ref = rate(lambda name=name: reference_generate(world, name, args.ref_rows, 0), args.ref_rows)

        def vectorised(name: str = name) -> None:
            q = stream_queries(TASKS[name], task_index(name), world, "standard", "train", 0, args.vec_rows)
            TASKS[name].tokens(world, q)

        vec = rate(vectorised, args.vec_rows)
        print(f"{name:<13}{ref:>18,.0f}{vec:>19,.0f}{vec / ref:>7.0f}x")
    if not args.quick:
        parts = [Part(name, "standard", 1_000_000) for name in TASKS]
        with tempfile.TemporaryDirectory() as root:
            start = time.perf_counter()
            rows = train_set(parts, 0, Path(root))
            elapsed = time.perf_counter() - start
            print(
                f"pt1 pretraining set: {rows.shape[0]:,} rows x {rows.shape[1]} tokens "
                f"({rows.nbytes / 1e6:,.0f} MB) built and cached in {elapsed:.1f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
