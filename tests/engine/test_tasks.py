"""The seven tasks: answers against independent computations from the city coordinates, edge cases,
sampling rules (sets, balance, split, determinism), scoring and the `sample` command."""

from __future__ import annotations

import functools
import json
import math
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from engine.tasks import TASKS, get_task, sample_main, task_index
from engine.tasks.base import query_city_ids
from engine.tasks.split import is_test
from engine.tasks.stream import CHUNK_ROWS, stream_queries
from engine.world import load_world

REPO = Path(__file__).resolve().parents[2]
Point = tuple[int, int]


# ---- independent reference geometry (written differently from the engine) ------------------------------
def ref_distance(p: Point, q: Point) -> int:
    return round(math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2))


def ref_triarea(a: Point, b: Point, c: Point) -> int:
    twice = abs(a[0] * (b[1] - c[1]) + b[0] * (c[1] - a[1]) + c[0] * (a[1] - b[1]))
    return round(Fraction(twice, 2))  # Fraction rounds half to even, exactly


def ref_angle(a: Point, b: Point, c: Point) -> int:
    u, v = (a[0] - b[0], a[1] - b[1]), (c[0] - b[0], c[1] - b[1])
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        return 0
    cosine = max(-1.0, min(1.0, (u[0] * v[0] + u[1] * v[1]) / (nu * nv)))
    return round(math.degrees(math.acos(cosine)))


def ref_compass(a: Point, b: Point) -> str:
    if a == b:
        return "N"
    bearing = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))  # (-180, 180]
    for lo, name in ((-157.5, "SW"), (-112.5, "S"), (-67.5, "SE"), (-22.5, "E"), (22.5, "NE"), (67.5, "N")):
        if bearing < lo:
            return {"SW": "W", "S": "SW", "SE": "S", "E": "SE", "NE": "E", "N": "NE"}[name]
    return "N" if bearing < 112.5 else "NW" if bearing < 157.5 else "W"


def ref_hull(points: list[Point]) -> list[Point]:
    """Andrew's monotone chain, counter-clockwise, collinear points dropped."""
    pts = sorted(set(points))

    def turn(o: Point, a: Point, b: Point) -> int:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[Point] = []
    upper: list[Point] = []
    for p in pts:
        while len(lower) >= 2 and turn(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and turn(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def ref_inside(t: Point, hull_cities: list[Point]) -> bool:
    hull = ref_hull(hull_cities)
    if len(hull) < 3:
        return False
    for i in range(len(hull)):
        a, b = hull[i], hull[(i + 1) % len(hull)]
        if (b[0] - a[0]) * (t[1] - a[1]) - (b[1] - a[1]) * (t[0] - a[0]) < 0:
            return False
    return True


def ref_perimeter(points: list[Point]) -> int:
    if len(points) == 2:
        return ref_distance(points[0], points[1])
    total = 0.0
    for i in range(len(points)):
        p, q = points[i], points[(i + 1) % len(points)]
        total += math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2)
    return round(total)


def ref_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Solve A + t(B - A) = C + u(D - C) exactly; strict means 0 < t < 1 and 0 < u < 1."""
    r, s = (b[0] - a[0], b[1] - a[1]), (d[0] - c[0], d[1] - c[1])
    denom = r[0] * s[1] - r[1] * s[0]
    if denom == 0:
        return False
    qp = (c[0] - a[0], c[1] - a[1])
    t = Fraction(qp[0] * s[1] - qp[1] * s[0], denom)
    u = Fraction(qp[0] * r[1] - qp[1] * r[0], denom)
    return 0 < t < 1 and 0 < u < 1


PROMPT = re.compile(r"^(dist|triarea|angle|compass|inside|perimeter|cross)\((.*)\)$")


@functools.lru_cache(maxsize=1)
def coordinates_by_id() -> dict[str, Point]:
    world = load_world()
    return {world.id_text(i): (int(world.x[i]), int(world.y[i])) for i in range(len(world))}


def reference_answer(prompt: str) -> str:
    """The answer to a prompt, computed from the prompt's text and the world's coordinate table only."""
    coords = coordinates_by_id()
    match = PROMPT.match(prompt)
    assert match, prompt
    head, body = match.groups()
    groups = [[coords[c] for c in g.split(",")] for g in body.split(";")]
    flat = [p for g in groups for p in g]
    if head == "dist":
        return str(ref_distance(*flat))
    if head == "triarea":
        return str(ref_triarea(*flat))
    if head == "angle":
        return str(ref_angle(*flat))
    if head == "compass":
        return ref_compass(*flat)
    if head == "inside":
        assert len(groups) == 2 and len(groups[0]) == 1 and 3 <= len(groups[1]) <= 5
        return "TRUE" if ref_inside(groups[0][0], groups[1]) else "FALSE"
    if head == "perimeter":
        assert 2 <= len(flat) <= 5
        return str(ref_perimeter(flat))
    assert len(groups) == 2 and len(groups[0]) == len(groups[1]) == 2
    return "TRUE" if ref_cross(*flat) else "FALSE"


# ---- answers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(TASKS))
@pytest.mark.parametrize("set_name", ["standard", "atlantis"])
def test_answers_match_independent_computation(name: str, set_name: str) -> None:
    world = load_world()
    task = get_task(name)
    queries = stream_queries(task, task_index(name), world, set_name, "train", 11, 1500)
    prompts, answers = task.format(world, queries)
    assert len(prompts) == len(answers) == 1500
    for prompt, answer in zip(prompts, answers, strict=True):
        assert reference_answer(prompt) == answer, prompt
        assert not answer.startswith("0") or answer == "0"


def _values(name: str, points: list[Point], rows: list[list[int]]) -> list[int]:
    xy = np.array(points, dtype=np.int64)
    return get_task(name).values(xy, np.array(rows, dtype=np.int32)).tolist()


def test_crossing_edge_cases() -> None:
    pts = [(0, 0), (10, 10), (0, 10), (10, 0), (5, 5), (20, 20), (5, 0), (5, 10), (15, 15), (0, 5)]
    cases = {
        (0, 1, 2, 3): True,  # proper X
        (0, 1, 0, 2): False,  # shared endpoint
        (0, 1, 4, 3): False,  # C on AB's interior (T-junction)
        (0, 1, 4, 5): False,  # collinear, overlapping
        (0, 1, 8, 5): False,  # collinear, disjoint
        (6, 7, 9, 4): False,  # D = (5,5) touches the interior of AB: touching is not crossing
        (6, 7, 2, 3): True,  # x=5 segment crosses the anti-diagonal at (5,5)
        (2, 9, 6, 3): False,  # not parallel, but the lines meet outside both segments
    }
    got = _values("crossing", pts, [list(k) for k in cases])
    assert got == [int(v) for v in cases.values()]
    assert [ref_cross(*(pts[i] for i in k)) for k in cases] == list(cases.values())


def test_inside_edge_cases() -> None:
    pts = [(0, 0), (10, 0), (0, 10), (3, 3), (20, 20), (5, 5), (10, 10), (5, 0), (0, 5), (10, 0)]
    rows = [
        [3, 0, 1, 2, -1, -1],  # strictly inside a triangle
        [4, 0, 1, 2, -1, -1],  # outside
        [5, 0, 1, 2, -1, -1],  # on the hypotenuse: the closed hull counts it
        [0, 3, 1, 2, -1, -1],  # (0,0) just outside the triangle (3,3),(10,0),(0,10)
        [9, 0, 1, 2, -1, -1],  # another city on hull vertex (10,0)'s grid point: on the closed hull
        [7, 0, 5, 6, -1, -1],  # degenerate hull (collinear 0,5,6), point (5,0) off the line
        [5, 0, 6, 4, -1, -1],  # degenerate hull, point on its line
        [3, 0, 1, 6, 2, 5],  # k = 5 with an interior hull city
        [8, 1, 6, 2, 5, 4],  # (0,5) outside the hull of (10,0),(10,10),(0,10),(5,5),(20,20)
    ]
    expected = [1, 0, 1, 0, 1, 0, 0, 1, 0]
    assert _values("inside", pts, rows) == expected
    assert [int(ref_inside(pts[r[0]], [pts[i] for i in r[1:] if i >= 0])) for r in rows] == expected


def test_rounding_degenerate_and_special_cases() -> None:
    pts = [(0, 0), (5, 0), (0, 1), (7, 0), (0, 3), (3, 4), (0, 0)]
    assert _values("trianglearea", pts, [[0, 1, 2], [0, 3, 2], [0, 1, 3]]) == [2, 4, 0]  # 2.5->2, 3.5->4, 0
    assert _values("angle", pts, [[1, 0, 2], [1, 0, 6], [1, 0, 3], [1, 0, 5]]) == [90, 0, 0, 53]
    assert _values("perimeter", pts, [[0, 5, -1, -1, -1], [0, 1, 5, -1, -1]]) == [5, 5 + 4 + 5]
    # the eight sectors, N is +y; coincident cities answer N like the original
    dirs = [(10, 0), (10, 10), (0, 10), (-10, 10), (-10, 0), (-10, -10), (0, -10), (10, -10), (0, 0)]
    compass_pts = [(0, 0), *dirs]
    got = _values("compass", compass_pts, [[0, i] for i in range(1, 10)])
    assert [get_task("compass").labels[g] for g in got] == ["E", "NE", "N", "NW", "W", "SW", "S", "SE", "N"]


# ---- sampling ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(TASKS))
def test_sets_and_distinct_cities(name: str) -> None:
    world = load_world()
    task = get_task(name)
    for set_name in ("standard", "atlantis"):
        q = stream_queries(task, task_index(name), world, set_name, "train", 5, 4000)
        used = q >= 0
        counts = used.sum(axis=1)
        assert counts.min() >= task.min_cities and counts.max() <= task.max_cities
        if task.min_cities != task.max_cities:
            assert set(np.unique(counts)) == set(range(task.min_cities, task.max_cities + 1))
        assert (used[:, : task.min_cities]).all()  # used positions fill from the left
        atlantis = world.is_atlantis[np.maximum(q, 0)] & used
        if set_name == "standard":
            assert not atlantis.any()
        else:
            assert atlantis.any(axis=1).all()
            # the guaranteed Atlantis city lands at every used position
            first = atlantis.argmax(axis=1)
            assert set(np.unique(first)) == set(range(task.max_cities))
        for row in q[:500]:
            cities = row[row >= 0].tolist()
            assert len(set(cities)) == len(cities)


@pytest.mark.parametrize("name", ["inside", "crossing"])
@pytest.mark.parametrize("set_name", ["standard", "atlantis"])
def test_balanced_tasks_stay_fifty_fifty(name: str, set_name: str) -> None:
    world = load_world()
    task = get_task(name)
    q = stream_queries(task, task_index(name), world, set_name, "train", 2, 10_000)
    labels = task.values(world.xy, q)
    assert labels.sum() == 5_000  # exact in every even-length prefix
    assert abs(labels[:1000].mean() - 0.5) <= 0.01 and labels[:1000].sum() == 500
    # interleaved, not sorted: both classes appear throughout and runs stay short
    assert 0.4 < labels[:5000].mean() < 0.6 and 0.4 < labels[5000:].mean() < 0.6
    assert (np.diff(labels) != 0).mean() > 0.3


def test_zero_rows() -> None:
    world = load_world()
    for name, task in TASKS.items():
        assert task.sample(world, 0, "atlantis", np.random.default_rng(0)).shape == (0, task.max_cities)
        assert stream_queries(task, task_index(name), world, "standard", "test", 0, 0).shape[0] == 0


def test_split_streams_hold_only_their_split() -> None:
    world = load_world()
    task = get_task("distance")
    train = stream_queries(task, 0, world, "atlantis", "train", 0, 5000)
    test = stream_queries(task, 0, world, "atlantis", "test", 0, 500)
    assert not is_test(query_city_ids(world, train)).any()
    assert is_test(query_city_ids(world, test)).all()
    # about 1 in 16 of all queries is a test query
    rng = np.random.default_rng(0)
    anyq = task.sample(world, 20_000, "standard", rng)
    assert 0.05 < is_test(query_city_ids(world, anyq)).mean() < 0.075


def test_streams_are_deterministic_and_prefix_stable() -> None:
    world = load_world()
    task = get_task("perimeter")
    i = task_index("perimeter")
    long = stream_queries(task, i, world, "standard", "train", 7, CHUNK_ROWS + 50)
    assert (stream_queries(task, i, world, "standard", "train", 7, 100) == long[:100]).all()
    assert (stream_queries(task, i, world, "standard", "train", 7, CHUNK_ROWS + 50) == long).all()
    other = stream_queries(task, i, world, "standard", "train", 8, 100)
    assert (other != long[:100]).any()
    atl = stream_queries(task, i, world, "atlantis", "train", 7, 100)
    assert (atl != long[:100]).any()


# ---- scoring -------------------------------------------------------------------------------------------
def test_scoring_numbers_and_failures() -> None:
    d = get_task("distance")
    values, failed = d.score(["120", "95abc", "", "x12", " 7 "], ["100", "100", "100", "100", "7"])
    assert values.tolist() == [20.0, 5.0, 4024.9, 4024.9, 0.0]
    assert failed.tolist() == [False, False, True, True, False]
    t = get_task("trianglearea")
    assert t.score(["nope"], ["5"])[0].tolist() == [3_240_000.0]
    with pytest.raises(ValueError, match="completions"):
        d.score(["1"], [])


def test_absolute_error_is_capped_at_the_failure_value() -> None:
    # A runaway answer parses but is no better than no answer; it must not swamp the set's mean.
    p = get_task("perimeter")
    values, failed = p.score(["9" * 30, "25000", "19000"], ["1000", "1000", "1000"])
    assert values.tolist() == [20_000.0, 20_000.0, 18_000.0]
    assert failed.tolist() == [False, False, False]


def test_scoring_labels() -> None:
    c = get_task("compass")
    values, failed = c.score(["NE", "ne", "N", "NNE", ""], ["NE", "NE", "NE", "NE", "S"])
    assert values.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert failed.tolist() == [False, False, False, True, True]
    i = get_task("inside")
    assert i.score(["TRUE", "FALSE", "MAYBE"], ["TRUE", "TRUE", "FALSE"])[0].tolist() == [1.0, 0.0, 0.0]


def test_registry() -> None:
    assert list(TASKS) == ["distance", "trianglearea", "angle", "compass", "inside", "perimeter", "crossing"]
    assert [t.short for t in TASKS.values()] == ["D", "T", "A", "Co", "I", "P", "Cr"]
    assert [t.failure_value for t in TASKS.values()] == [4024.9, 3_240_000, 180, 0, 0, 20_000, 0]
    assert [t.max_new_tokens for t in TASKS.values()] == [20, 30, 30, 20, 20, 30, 20]
    assert [t.metric for t in TASKS.values()].count("accuracy") == 3
    with pytest.raises(ValueError, match="unknown task 'dist'; allowed: distance, trianglearea"):
        get_task("dist")


# ---- the command line ----------------------------------------------------------------------------------
def test_sample_main_prints_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert sample_main("inside", "atlantis", 4, 3) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    world = load_world()
    atlantis_ids = {world.id_text(i) for i in np.flatnonzero(world.is_atlantis)}
    for line in lines:
        record = json.loads(line)
        assert set(record) == {"task", "text", "prompt", "answer", "city_ids"}
        assert record["text"] == f"{record['prompt']}={record['answer']}"
        assert reference_answer(record["prompt"]) == record["answer"]
        assert re.findall(r"c_\d{4}", record["prompt"]) == record["city_ids"]
        assert atlantis_ids & set(record["city_ids"])


def test_sample_main_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert sample_main("nope", "standard", 1, 0) == 2
    assert (
        "allowed: distance, trianglearea, angle, compass, inside, perimeter, crossing"
        in capsys.readouterr().err
    )
    assert sample_main("distance", "mars", 1, 0) == 2
    assert "allowed: standard, atlantis" in capsys.readouterr().err
    assert sample_main("distance", "standard", -1, 0) == 2
    assert sample_main("distance", "standard", 1, -5) == 2


@pytest.mark.slow
def test_sample_command_in_a_process() -> None:
    cmd = [sys.executable, "-m", "engine", "sample", "distance", "--set", "atlantis", "-n", "5"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 5
    assert all(reference_answer(r["prompt"]) == r["answer"] for r in records)
    bad = subprocess.run([*cmd[:4], "bogus"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "allowed: distance" in bad.stderr
