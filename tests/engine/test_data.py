"""Data recipes: token layout, the cache (lock, atomic publish, reuse), determinism, prefix-stable parts,
and no test query in any training set."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from engine import data
from engine.data import EvalSet, Part, eval_sets, train_set
from engine.tasks import TASKS
from engine.tokenizer import BOS, EOS, PAD, decode

ALL_TASKS = list(TASKS)


def _texts(rows: np.ndarray) -> list[str]:
    return [decode(r) for r in rows]


def test_train_set_layout_and_cache(tmp_path: Path) -> None:
    parts = [Part("distance", "standard", 300), Part("inside", "atlantis", 200)]
    rows = train_set(parts, 0, tmp_path)
    assert isinstance(rows, np.memmap) and rows.dtype == np.uint8
    assert rows.shape[0] == 500 and rows.shape[1] <= 256
    assert (rows[:, 0] == BOS).all()
    lengths = (rows != PAD).sum(axis=1)
    assert (rows[np.arange(500), lengths - 1] == EOS).all()
    assert lengths.max() == rows.shape[1]  # padded to the longest row, no further
    assert (np.asarray(rows) == data.build_train_tokens(parts, 0)).all()  # the file holds what was built
    texts = _texts(rows)
    assert all(t.startswith("dist(") for t in texts[:300]) and all(
        t.startswith("inside(") for t in texts[300:]
    )
    assert sum(t.endswith("=TRUE") for t in texts[300:]) == 100
    folders = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1
    recipe = json.loads((folders[0] / "recipe.json").read_text())
    assert recipe["parts"] == [
        {"task": "distance", "set": "standard", "n": 300},
        {"task": "inside", "set": "atlantis", "n": 200},
    ]
    mtime = (folders[0] / "tokens.npy").stat().st_mtime_ns
    again = train_set(parts, 0, tmp_path)  # served from the cache, not rebuilt
    assert (np.asarray(again) == np.asarray(rows)).all()
    assert (folders[0] / "tokens.npy").stat().st_mtime_ns == mtime


def test_same_recipe_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    parts = [Part(t, "atlantis", 64) for t in ALL_TASKS]
    a = train_set(parts, 5, tmp_path / "a")
    b = train_set(parts, 5, tmp_path / "b")
    c = train_set(parts, 6, tmp_path / "a")
    assert a.tobytes() == b.tobytes()
    assert a.shape[0] == c.shape[0] and (a.shape != c.shape or (np.asarray(a) != np.asarray(c)).any())
    assert len(set(_texts(a)) & set(_texts(c))) < 10


def test_replay_rows_are_a_prefix_of_the_pretraining_stream(tmp_path: Path) -> None:
    pretrain = _texts(train_set([Part(t, "standard", 2000) for t in ALL_TASKS], 0, tmp_path))
    finetune = _texts(
        train_set([Part("angle", "standard", 200), Part("angle", "atlantis", 300)], 0, tmp_path)
    )
    angle_start = ALL_TASKS.index("angle") * 2000
    assert finetune[:200] == pretrain[angle_start : angle_start + 200]


def test_no_test_query_in_any_training_set(tmp_path: Path) -> None:
    # a pretraining-like and a fine-tuning-like recipe with warm-up rows, against the 14 evaluation sets
    pt = train_set([Part(t, "standard", 4000) for t in ALL_TASKS], 0, tmp_path)
    ft = train_set(
        [Part("distance", "standard", 500), Part("distance", "atlantis", 4000)]
        + [Part(t, "atlantis", 256) for t in ALL_TASKS],
        0,
        tmp_path,
    )
    sets = eval_sets(ALL_TASKS, ["standard", "atlantis"], 1000, 1, tmp_path)
    train_prompts = {t.split("=")[0] for t in _texts(pt) + _texts(ft)}
    test_prompts = {p for s in sets for p in s.prompts}
    assert len(train_prompts) > 20_000 and len(test_prompts) > 10_000
    assert not train_prompts & test_prompts
    # atlantis distance: ~1.3M possible ordered pairs, so without the split an overlap would be near certain
    atl_distance = next(s for s in sets if s.key == "atlantis/distance")
    assert {t.split("=")[0] for t in _texts(ft) if t.startswith("dist(")}.isdisjoint(atl_distance.prompts)


def test_eval_sets_order_content_and_cache(tmp_path: Path) -> None:
    sets = eval_sets(["compass", "distance"], ["atlantis", "standard"], 50, 1, tmp_path)
    assert [s.key for s in sets] == [
        "atlantis/compass",
        "atlantis/distance",
        "standard/compass",
        "standard/distance",
    ]
    for s in sets:
        assert isinstance(s, EvalSet) and len(s.prompts) == len(s.answers) == 50
        assert all(not p.endswith("=") for p in s.prompts)
    assert sets[1].prompts[0].startswith("dist(") and sets[0].answers[0] in TASKS["compass"].labels
    again = eval_sets(["compass", "distance"], ["atlantis", "standard"], 50, 1, tmp_path)
    assert again == sets
    bigger = eval_sets(["distance"], ["atlantis"], 80, 1, tmp_path)
    assert bigger[0].prompts[:50] == sets[1].prompts  # prefix-stable


def test_bad_recipes_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"data part 2 \(dist/standard\): unknown task 'dist'; allowed: distance"
    ):
        train_set([Part("angle", "standard", 1), Part("dist", "standard", 1)], 0, tmp_path)
    with pytest.raises(ValueError, match="unknown set 'mars'; allowed: standard, atlantis"):
        train_set([Part("angle", "mars", 1)], 0, tmp_path)
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        train_set([Part("angle", "standard", -3)], 0, tmp_path)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        train_set([Part("angle", "standard", 3)], -1, tmp_path)
    with pytest.raises(ValueError, match="unknown task 'x'"):
        eval_sets(["x"], ["standard"], 10, 1, tmp_path)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        eval_sets(["angle"], ["standard"], 0, 1, tmp_path)


def test_stale_temporary_folder_is_cleaned_and_foreign_folder_refused(tmp_path: Path) -> None:
    parts = [Part("compass", "standard", 10)]
    name = data.recipe_hash(data.train_recipe(parts, 0))
    stale = tmp_path / f".tmp-{name}-99999"
    stale.mkdir(parents=True)
    (stale / "tokens.npy").write_bytes(b"half")
    train_set(parts, 0, tmp_path)
    assert not stale.exists()
    other = data.recipe_hash(data.train_recipe([Part("compass", "standard", 11)], 0))
    (tmp_path / other).mkdir()
    (tmp_path / other / "recipe.json").write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(RuntimeError, match="does not hold the recipe"):
        train_set([Part("compass", "standard", 11)], 0, tmp_path)


def _build(root: str, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    start.wait()
    rows = train_set(
        [Part("inside", "standard", 30_000), Part("perimeter", "atlantis", 30_000)], 3, Path(root)
    )
    out.put((rows.shape, int(np.asarray(rows, dtype=np.int64).sum())))


@pytest.mark.slow
def test_concurrent_builders_produce_one_complete_set(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_build, args=(str(tmp_path), start, out)) for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert results[0] == results[1] and results[0][0][0] == 60_000
    entries = sorted(p.name for p in tmp_path.iterdir())
    folders = [e for e in entries if not e.startswith(".")]
    assert len(folders) == 1 and not [e for e in entries if e.startswith(".tmp-")]
    assert sorted(p.name for p in (tmp_path / folders[0]).iterdir()) == ["recipe.json", "tokens.npy"]
