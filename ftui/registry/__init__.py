"""The registry: experiments.toml loaded, validated, expanded into runs and resolved into engine configs.

    registry = load_registry(Path("experiments.toml"))      # RegistryError lists every problem
    for run in registry.runs(["ft2-*"]):
        write_run_config(registry, run, registry.runs_dir())  # runs/ft2-1/config.toml ...

A run is one experiment at one seed. Its folder under the runs folder is its key: `ft2-3` when the experiment
has one seed, `ft2-3/seed-42` when it has several. `resolve_config` emits exactly the engine's config.toml
schema (docs/run-directory.md); the file format of experiments.toml is documented in docs/registry.md.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ftui.atomic import atomic_write_text
from ftui.registry.parse import parse_registry
from ftui.registry.records import (
    AppSettings,
    Experiment,
    HeatmapDef,
    Profile,
    Run,
    RunnerSettings,
    Study,
    TaskInfo,
    frozen_map,
    run_key,
)
from ftui.registry.schema import (
    MODEL_KEYS,
    TRAIN_KEYS,
    WORLD_KEYS,
    Problem,
    RegistryError,
    Spec,
    did_you_mean,
)
from ftui.rundir import CONFIG, FINAL_CHECKPOINT, started_on_disk

__all__ = [
    "AppSettings",
    "Experiment",
    "HeatmapDef",
    "Problem",
    "Profile",
    "Registry",
    "RegistryError",
    "Run",
    "RunnerSettings",
    "Study",
    "TaskInfo",
    "load_registry",
    "write_run_config",
]

GLOB_CHARS = frozenset("*?[")  # fnmatch's special characters: a pattern without them matches by equality
DATA_DIR = ".data"  # shared data cache under the runs folder (docs/run-directory.md)


@dataclass(frozen=True)
class Registry:
    path: Path
    study: Study
    runner: RunnerSettings
    profiles: Mapping[str, Profile]
    experiments: tuple[Experiment, ...]  # [[experiment]] entries in file order, then families in file order
    families: Mapping[str, tuple[str, ...]]  # family -> experiment names in row order
    heatmaps: tuple[HeatmapDef, ...]
    app: AppSettings = AppSettings()  # [app]

    # -- lookups -------------------------------------------------------------------------------------------

    def experiment(self, name: str) -> Experiment:
        if name in self._experiments_by_name:
            return self._experiments_by_name[name]
        raise self._error(f"unknown experiment {name!r}", name, [e.name for e in self.experiments])

    def all_runs(self) -> list[Run]:
        """Every run: experiments in order, each experiment's seeds in order."""
        return list(self._runs_by_key.values())

    # Computed once per registry (cached_property writes the instance __dict__, which a frozen dataclass
    # allows): `run()` and `dependencies()` are called per job by the runner, so they must not rebuild.
    @cached_property
    def _experiments_by_name(self) -> dict[str, Experiment]:
        return {exp.name: exp for exp in self.experiments}

    @cached_property
    def _runs_by_key(self) -> dict[str, Run]:
        runs = (self._make_run(exp, seed) for exp in self.experiments for seed in exp.seeds)
        return {run.key: run for run in runs}

    def runs(self, patterns: Sequence[str] = ()) -> list[Run]:
        """Runs whose experiment name, run key or family matches any glob pattern (all runs if none given).

        A pattern that matches nothing is an error naming it (with close names), so a typo never silently
        selects nothing.
        """
        if not patterns:
            return self.all_runs()
        if not any(GLOB_CHARS.intersection(p) for p in patterns):
            picked = self._named_runs(patterns)  # `ftui list ft2-3`: no expansion of thousands of runs
            if picked is not None:
                return picked
        runs = self.all_runs()
        chosen: set[str] = set()  # run keys (`r not in a list` made `ft*` quadratic in thousands of runs)
        unmatched: list[str] = []
        for pattern in patterns:
            hits = [r.key for r in runs if _matches(r, pattern)]
            if not hits:
                unmatched.append(pattern)
            chosen.update(hits)
        if unmatched:
            names = [e.name for e in self.experiments] + list(self.families)
            problems = [
                Problem(str(self.path), None, None, None, self._no_match(p, names)) for p in unmatched
            ]
            raise RegistryError(problems)
        return [r for r in runs if r.key in chosen]  # in the registry's order

    def run(self, key: str) -> Run:
        """The run with this key; an experiment name is accepted when the experiment has one seed."""
        if "_runs_by_key" in self.__dict__:
            if key in self._runs_by_key:
                return self._runs_by_key[key]
        elif (at := self._position(key)) is not None:  # one run looked up: no expansion of thousands
            return self._run_at(at)
        runs = self.all_runs()  # (the errors: name the seeds, or close run keys)
        several = [r.key for r in runs if r.experiment.name == key]
        if several:
            raise self._error(f"experiment {key!r} has several seeds: name one run ({', '.join(several)})")
        raise self._error(f"unknown run {key!r}", key, [r.key for r in runs])

    def dependencies(self, run: Run) -> list[Run]:
        """The runs that must finish training before `run` can start: its parent (same seed)."""
        if run.parent_key is None:
            return []
        return [self.run(run.parent_key)]

    def runs_dir(self, override: Path | None = None) -> Path:
        """The runs folder: `override` (--runs), else the study's `runs`, relative to the registry file."""
        if override is not None:
            return Path(override)
        folder = Path(self.study.runs).expanduser()
        return folder if folder.is_absolute() else self.path.parent / folder

    def profile(self, name: str | None = None) -> Profile:
        chosen = name or self.study.default_profile
        if chosen not in self.profiles:
            raise self._error(f"unknown profile {chosen!r}", chosen, list(self.profiles))
        return self.profiles[chosen]

    # -- config resolution ---------------------------------------------------------------------------------

    def resolve_config(self, run: Run, profile: str | None = None) -> dict[str, Any]:
        """The engine's config.toml content for `run` under a profile (default: the study's)."""
        prof = self.profile(profile)
        exp = run.experiment
        section = {**prof.kind(exp.kind), **exp.overrides}
        depth = run.rel_dir.count("/") + 1
        up = "../" * depth
        config: dict[str, Any] = {
            "name": exp.name,
            "kind": exp.kind,
            "seed": run.seed,
            "tasks": list(exp.tasks),
        }
        if run.parent_key is not None:
            config["parent"] = f"{up}{run.parent_key}/{FINAL_CHECKPOINT}"
        config["data_root"] = f"{up}{DATA_DIR}"
        config["data"] = {"seed": self.study.data_seed, "parts": self._parts(exp, section)}
        if prof.world:
            config["world"] = {
                key: _plain(prof.world[key], spec) for key, spec in WORLD_KEYS.items() if key in prof.world
            }
        config["model"] = {
            key: _plain(prof.model[key], spec) for key, spec in MODEL_KEYS.items() if key in prof.model
        }
        train = {key: _plain(section[key], spec) for key, spec in TRAIN_KEYS.items() if key in section}
        by_size = section.get("epochs_by_set_size", {})
        if str(len(exp.tasks)) in by_size:
            train["epochs"] = by_size[str(len(exp.tasks))]
        config["train"] = train
        config["eval"] = {
            "seed": self.study.eval_seed,
            "n": prof.eval["n"],
            "sets": list(prof.eval.get("sets", ["standard", "atlantis"])),
            "tasks": list(self.study.task_names),
        }
        for key in ("batch_size", "save_examples"):
            if key in prof.eval:
                config["eval"][key] = prof.eval[key]
        return config

    def _parts(self, exp: Experiment, section: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The [data] parts: per trained task standard + atlantis rows; warm-up atlantis rows of every task.

        The engine draws a part (task, set, n) as the first n rows of one deterministic stream per
        (task, set), so a separate warm-up part of a trained task would repeat rows already in its atlantis
        part. Adding the warm-up rows to that part's n instead gives distinct rows, as the original's
        separate warm-up set did, and keeps one part per (task, set).
        """
        rows: dict[tuple[str, str], int] = {}
        for task in exp.tasks:
            rows[(task, "standard")] = section.get("standard_rows", 0)
            rows[(task, "atlantis")] = section.get("atlantis_rows", 0)
        if exp.warmup:
            for task in self.study.task_names:
                rows[(task, "atlantis")] = rows.get((task, "atlantis"), 0) + section.get("warmup_rows", 0)
        return [{"task": t, "set": s, "n": n} for (t, s), n in rows.items() if n > 0]

    # -- helpers -------------------------------------------------------------------------------------------

    def _make_run(self, exp: Experiment, seed: int) -> Run:
        key = run_key(exp.name, seed, exp.seeds)
        parent_key = None
        if exp.parent is not None:
            parent = self._experiments_by_name[exp.parent]
            parent_key = run_key(parent.name, seed, parent.seeds)
        # Run(exp, seed, key, key, parent_key) without the frozen dataclass's __init__ (one object.__setattr__
        # per field): the same object, made thousands of times by every listing of a large sweep.
        run: Run = object.__new__(Run)
        run.__dict__.update(experiment=exp, seed=seed, key=key, rel_dir=key, parent_key=parent_key)
        return run

    @cached_property
    def _experiment_index(self) -> dict[str, int]:
        return {exp.name: i for i, exp in enumerate(self.experiments)}

    def _position(self, key: str) -> tuple[int, int] | None:
        """(experiment index, seed index) of the run `key` (either form of `run_key`), in O(1); None when no
        run has that key."""
        e = self._experiment_index.get(key)
        if e is not None:  # an experiment's name is its run's key when it has one seed
            return (e, 0) if len(self.experiments[e].seeds) == 1 else None
        name, found, seed = key.rpartition("/seed-")
        e = self._experiment_index.get(name) if found else None
        if e is None or len(self.experiments[e].seeds) == 1:
            return None
        try:
            value = int(seed)
        except ValueError:
            return None
        seeds = self.experiments[e].seeds
        return (e, seeds.index(value)) if str(value) == seed and value in seeds else None

    def _run_at(self, at: tuple[int, int]) -> Run:
        exp = self.experiments[at[0]]
        return self._make_run(exp, exp.seeds[at[1]])

    def _named_runs(self, names: Sequence[str]) -> list[Run] | None:
        """`runs(names)` for patterns without glob characters (a literal pattern matches by equality: an
        experiment, a family or a run key), in the registry's order, built without expanding every
        experiment's seeds; None when a name matches nothing (the glob path then names it in its error)."""
        picked: set[tuple[int, int]] = set()
        for name in names:
            hits = {
                (e, s)
                for e, exp in enumerate(self.experiments)
                if name in (exp.name, exp.family)
                for s in range(len(exp.seeds))
            }
            if not hits and (at := self._position(name)) is not None:
                hits.add(at)
            if not hits:
                return None
            picked |= hits
        return [self._run_at(at) for at in sorted(picked)]

    def _error(self, message: str, word: str | None = None, names: Sequence[str] = ()) -> RegistryError:
        if word is not None and names:
            message += did_you_mean(word, names)
        return RegistryError([Problem(str(self.path), None, None, None, message)])

    def _no_match(self, pattern: str, names: Sequence[str]) -> str:
        import difflib  # (here: an error's hint; the import costs every command's start-up)

        close = difflib.get_close_matches(pattern, list(dict.fromkeys(names)), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"pattern {pattern!r} matches no experiment, run or family{hint}"


def _matches(run: Run, pattern: str) -> bool:
    family = run.experiment.family
    return (
        fnmatch.fnmatchcase(run.experiment.name, pattern)
        or fnmatch.fnmatchcase(run.key, pattern)
        or (family is not None and fnmatch.fnmatchcase(family, pattern))
    )


def _plain(value: Any, spec: Spec) -> Any:
    """The TOML value the engine expects: floats stay floats even when written as integers (lr = 1)."""
    if spec.kind == "float":
        return float(value)
    if spec.kind == "float_list":
        return [float(v) for v in value]
    if isinstance(value, list):
        return list(value)
    return value


def load_registry(path: Path | str) -> Registry:
    """Read and validate a registry file. Raises RegistryError (every problem listed); never writes."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(
            [Problem(str(path), None, None, None, "file not found (give the registry with --registry FILE)")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError([Problem(str(path), None, None, None, f"cannot read: {exc}")]) from None
    parsed = parse_registry(str(path), text)
    return Registry(
        path=path,
        study=parsed.study,
        runner=parsed.runner,
        profiles=frozen_map(parsed.profiles),
        experiments=tuple(parsed.experiments),
        families=frozen_map(parsed.families),
        heatmaps=tuple(parsed.heatmaps),
        app=parsed.app,
    )


# ---------------------------------------------------------------------------------------------------------
# Writing run configs


def render_config(config: Mapping[str, Any], registry: Registry, profile: str) -> str:
    """config.toml text: a short header (comments only) and the config written by tomli-w."""
    header = (
        f"# Resolved by ftui from {registry.path.name} (profile {profile!r}). Edit the registry and run\n"
        "# `ftui prepare` again rather than this file; `python -m engine train <this folder>` runs it.\n\n"
    )
    import tomli_w

    return header + tomli_w.dumps(dict(config))


def config_status(path: Path, config: Mapping[str, Any]) -> str:
    """'new' (no config.toml), 'same' (equal content, comments aside) or 'changed'."""
    try:
        current = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        return "new"
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "changed"
    return "same" if current == config else "changed"


def write_run_config(
    registry: Registry, run: Run, runs_dir: Path, profile: str | None = None, *, force: bool = False
) -> Path:
    """Write `runs_dir/<run folder>/config.toml` atomically and return its path.

    Identical content leaves the file untouched. A different config for a run that already started (events
    or checkpoints in its folder) is refused unless `force`: the run's checkpoints and logs belong to the old
    config. (The runner refuses `force` while the run's job is running.)
    """
    profile_name = profile or registry.study.default_profile
    config = registry.resolve_config(run, profile_name)
    run_dir = Path(runs_dir) / run.rel_dir
    path = run_dir / CONFIG
    status = config_status(path, config)
    if status == "same":
        return path
    if status == "changed" and started_on_disk(run_dir) and not force:
        raise RegistryError([clash_problem(path, run)])
    atomic_write_text(path, render_config(config, registry, profile_name))
    return path


def clash_problem(path: Path, run: Run) -> Problem:
    return Problem(
        str(path),
        None,
        f"run {run.key!r}",
        None,
        "has already started with a different config (events or checkpoints exist); the new config would "
        "not match its checkpoints: use --force to overwrite it, or cancel and remove the run folder first",
    )
