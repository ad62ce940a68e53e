"""The world as a parameter: the study's world unchanged bit for bit, other worlds never share data, and a
run refuses a parent or checkpoint from another world (issue 14)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import ConfigError, parse_config
from engine.data import Part, build_eval_sets, build_train_tokens, train_set, world_fingerprint
from engine.evaluate import eval_main
from engine.train import run_training
from engine.world import PAPER_WORLD, WorldSpec, atlantis_degrees, load_world, world_csv
from tests.engine.train_helpers import (
    events,
    one_torch_thread,  # noqa: F401 (autouse fixture)
    run_engine,
    tiny_config,
    write_run,
)

LAPTOP_WORLD = WorldSpec(min_population=1_000_000)


def test_the_study_world_and_its_data_are_unchanged() -> None:
    """Hashes recorded on main 1456c9e, before the world became a parameter."""
    world = load_world()
    assert world.spec == PAPER_WORLD and len(world) == 6304
    assert world_fingerprint() == "2d0649a72dfccfa2"
    csv_sha = hashlib.sha256(world_csv(world).encode()).hexdigest()
    assert csv_sha == "dfbd4f0053e104ab499a6b3f3255b4ba5293d7b9e3f9db742e5f99e2fe92a829"
    parts = [Part(t, s, 300) for t in ("distance", "inside", "perimeter") for s in ("standard", "atlantis")]
    tokens = build_train_tokens(parts, 0)
    assert hashlib.sha256(tokens.tobytes()).hexdigest() == (
        "9249c7d2888151bd8043d519b52db4ec10dbd8d88a1e53217f526e8daa276d66"
    )
    h = hashlib.sha256()
    for es in build_eval_sets(["angle", "crossing"], ["standard", "atlantis"], 50, 1):
        h.update(("|".join(es.prompts) + "#" + "|".join(es.answers)).encode())
    assert h.hexdigest() == "c7c74c086df7179fc00000db77a1a3a242b11be70e3d420aedd68b82c4719592"


def test_a_smaller_world_keeps_the_atlantis_draws_and_ids_prefix_stable() -> None:
    small = load_world(LAPTOP_WORLD)
    assert small.n_real == 564 and small.n_atlantis == 100
    assert small.spec == LAPTOP_WORLD
    paper = load_world()
    np.testing.assert_array_equal(small.x[small.n_real :], paper.x[paper.n_real :])
    np.testing.assert_array_equal(small.city_id, paper.city_id[: len(small)])
    more = atlantis_degrees(WorldSpec(atlantis_cities=150))
    np.testing.assert_array_equal(more[0][:100], atlantis_degrees()[0])


def test_two_worlds_never_share_a_data_cache(tmp_path: Path) -> None:
    parts = [Part("distance", "standard", 64), Part("compass", "atlantis", 64)]
    a = train_set(parts, 0, tmp_path)
    b = train_set(parts, 0, tmp_path, LAPTOP_WORLD)
    assert len(list(tmp_path.iterdir())) >= 2
    folders = {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert len(folders) == 2
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    assert world_fingerprint(LAPTOP_WORLD) != world_fingerprint()


@pytest.mark.parametrize(
    ("world", "key"),
    [
        ({"atlantis_cities": 0}, "world.atlantis_cities"),
        ({"min_population": 999_999_999}, "world.min_population"),
        ({"atlantis_center": [200.0, 0.0]}, "world.atlantis_center"),
        ({"atlantis_sigma": 0}, "world.atlantis_sigma"),
        ({"atlantis_sigma": float("nan")}, "world.atlantis_sigma"),
        ({"cities": 5}, "world.cities"),
        ({"min_population": 0}, "world"),  # every city: more than 10,000 four-digit IDs
    ],
)
def test_a_bad_world_names_the_key(tmp_path: Path, world: dict, key: str) -> None:
    raw = tiny_config(tmp_path, world=world)
    with pytest.raises(ConfigError) as info:
        parse_config(raw, tmp_path / "config.toml")
    assert f"config.toml: {key}" in str(info.value)


def test_runs_name_their_world_and_refuse_a_parent_or_checkpoint_from_another(tmp_path: Path) -> None:
    data = tmp_path / "data"
    world = {"min_population": 1_000_000}
    parent = write_run(tmp_path / "pt", tiny_config(data, world=world, train={"epochs": 1}))
    assert run_training(parent) == 0
    start = next(e for e in events(parent) if e["event"] == "start")
    assert start["world"]["min_population"] == 1_000_000
    assert "population >= 1,000,000" in (parent / "train.log").read_text()
    assert eval_main(parent) == 0
    assert '"min_population": 1000000' in (parent / "eval.json").read_text()

    # A fine-tune in the study's world from a parent trained in the laptop world: exit 2, both named.
    child_cfg = tiny_config(data, kind="finetune", parent=str(parent / "checkpoints" / "final.pt"))
    child = write_run(tmp_path / "ft", child_cfg)
    result = run_engine("train", str(child))
    assert result.returncode == 2, result.stderr
    message = (child / "train.log").read_text()
    assert "world" in message and "1,000,000" in message and "100,000" in message
    assert not (child / "checkpoints").exists()

    # Evaluating the laptop-world checkpoint with a study-world config: refused, no eval.json.
    other = write_run(tmp_path / "ev", tiny_config(data))
    assert eval_main(other, checkpoint=parent / "checkpoints" / "final.pt") == 2
    assert not (other / "eval.json").exists()
    assert "another world" in (other / "train.log").read_text()


def test_engine_world_command_takes_the_world_options(tmp_path: Path) -> None:
    out = tmp_path / "w.csv"
    result = run_engine("world", "--min-population", "1000000", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 1 + 564 + 100
    bad = run_engine("world", "--min-population", "999999999")
    assert bad.returncode == 2 and "world.min_population" in bad.stderr
    torch.manual_seed(0)
