"""Parse and validate the text of an experiments.toml into registry records.

Every check appends to one list of problems (a `Collector`); `parse_registry` raises a single RegistryError
with all of them, so the user fixes everything in one pass. Nothing here touches the file system. The checks
are split: [study], [runner] and [app] here, profiles in `registry_profiles`, experiments, families, parents
and heatmaps in `registry_experiments`.
"""

from __future__ import annotations

import math
import re
import shlex
import tomllib
from dataclasses import dataclass
from typing import Any

from ftui.registry.experiments import check_parents, parse_experiments, parse_heatmaps, parse_task_sets
from ftui.registry.profiles import check_profiles_against_experiments, parse_profiles
from ftui.registry.records import (
    AppSettings,
    Experiment,
    HeatmapDef,
    Profile,
    RunnerSettings,
    SlurmSettings,
    Study,
    TaskInfo,
)
from ftui.registry.schema import (
    APP_KEYS,
    CRASH_POLICIES,
    EXECUTORS,
    NORMALISATIONS,
    RUNNER_KEYS,
    SLURM_KEYS,
    STUDY_KEYS,
    TASK_KEYS,
    TOP_KEYS,
    Collector,
    Problem,
    RegistryError,
    SourceMap,
    did_you_mean,
    seed_list,
    table_of,
)
from ftui.registry.tasks import engine_task_names


@dataclass
class Parsed:
    study: Study
    runner: RunnerSettings
    profiles: dict[str, Profile]
    experiments: list[Experiment]
    families: dict[str, tuple[str, ...]]
    heatmaps: list[HeatmapDef]
    app: AppSettings


_SYNTAX_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def parse_registry(file: str, text: str) -> Parsed:
    """Parse `text` (the contents of `file`); raise RegistryError listing every problem."""
    text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark, as some Windows editors save it
    source = SourceMap(text)
    ctx = Collector(file, source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _SYNTAX_POS.search(message)
        line = int(match.group(1)) if match else None
        column = int(match.group(2)) if match else None
        reason = _SYNTAX_POS.sub("", message).strip()
        raise RegistryError(
            [Problem(file, line, None, None, f"TOML syntax error: {reason}", column)]
        ) from None

    ctx.unknown_keys(data, TOP_KEYS, "top level", "")
    study, lookup = _parse_study(ctx, table_of(ctx, data, "study", required=True))
    runner = _parse_runner(ctx, table_of(ctx, data, "runner"))
    app = _parse_app(ctx, table_of(ctx, data, "app"))
    profiles = parse_profiles(ctx, table_of(ctx, data, "profile", required=True))
    task_sets = parse_task_sets(ctx, table_of(ctx, data, "task_sets"), lookup)
    declared = parse_experiments(ctx, data, study, lookup, task_sets)
    experiments, families = declared.experiments, declared.families
    check_parents(ctx, declared)
    heatmaps = parse_heatmaps(ctx, data, declared)
    if study.default_profile and profiles and study.default_profile not in profiles:
        ctx.add(
            "study",
            "default_profile",
            f"unknown profile {study.default_profile!r}" + did_you_mean(study.default_profile, profiles),
            table="study",
            key="default_profile",
        )
    check_profiles_against_experiments(ctx, profiles, experiments, len(study.tasks))
    if ctx.problems:
        raise RegistryError(ctx.problems)
    return Parsed(study, runner, profiles, experiments, families, heatmaps, app)


# ---------------------------------------------------------------------------------------------------------
# [study] and [runner]


def _parse_study(ctx: Collector, raw: dict[str, Any]) -> tuple[Study, dict[str, str] | None]:
    """The study, and a lookup from task name or short code to task name (None if the task list is broken)."""
    ctx.unknown_keys(raw, STUDY_KEYS, "study", "study")

    def bad(fld: str, message: str, needle: str | None = None) -> None:
        ctx.add("study", fld, message, table="study", key=fld, needle=needle)

    tasks: list[TaskInfo] = []
    lookup: dict[str, str] | None = {}
    engine_tasks = engine_task_names()
    raw_tasks = raw.get("tasks")
    if raw_tasks is None:
        if raw:
            bad("tasks", 'missing: list the tasks in index order, e.g. [{ name = "distance", short = "D" }]')
        lookup = None
    elif raw_tasks is not None and (not isinstance(raw_tasks, list) or not raw_tasks):
        bad("tasks", 'must be a non-empty list of tables like { name = "distance", short = "D" }')
        lookup = None
    else:
        for i, item in enumerate(raw_tasks or []):
            if not isinstance(item, dict):
                bad(f"tasks[{i}]", 'must be a table like { name = "distance", short = "D" }')
                lookup = None
                continue
            for key in item:
                if key not in TASK_KEYS:
                    bad(f"tasks[{i}].{key}", "unknown key" + did_you_mean(key, TASK_KEYS), needle=None)
            name, short = item.get("name"), item.get("short")
            if not isinstance(name, str) or not name or not isinstance(short, str) or not short:
                bad(f"tasks[{i}]", "needs a name and a short code, both non-empty strings")
                lookup = None
                continue
            if engine_tasks is not None and name not in engine_tasks:
                bad(
                    f"tasks[{i}].name",
                    f"the engine has no task {name!r}" + did_you_mean(name, engine_tasks),
                    needle=name,
                )
            for word in (name, short):
                if lookup is not None and word in lookup and lookup[word] != name:
                    bad(f"tasks[{i}]", f"{word!r} is already used by task {lookup[word]!r}", needle=word)
                elif lookup is not None and word in lookup and word == name and word != short:
                    bad(f"tasks[{i}]", f"task {name!r} is listed twice", needle=name)
            if lookup is not None:
                lookup.setdefault(name, name)
                lookup.setdefault(short, name)
            tasks.append(TaskInfo(name, short))

    seeds = seed_list(ctx, raw.get("seeds"), "study", "seeds", table="study", index=None)
    if "seeds" not in raw and raw:
        bad("seeds", "missing: give the seeds of every run, e.g. seeds = [42]")
    default_profile = raw.get("default_profile", "")
    if not isinstance(default_profile, str):
        bad("default_profile", "must be the name of a [profile.NAME] table")
        default_profile = ""
    elif "default_profile" not in raw and raw:
        bad("default_profile", "missing: name the [profile.NAME] used when --profile is not given")
    runs = raw.get("runs", "runs")
    if not isinstance(runs, str) or not runs:
        bad("runs", "must be a folder path (relative to this file unless absolute)")
        runs = "runs"
    normalisation = raw.get("normalisation", "perfect")
    if normalisation not in NORMALISATIONS:
        bad(
            "normalisation",
            f"unknown scheme {normalisation!r}" + did_you_mean(str(normalisation), NORMALISATIONS),
        )
        normalisation = "perfect"
    seeds_out: list[int] = []
    for key, default in (("data_seed", 0), ("eval_seed", 1)):
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            bad(key, f"must be an integer >= 0, got {value!r}")
            value = default
        seeds_out.append(value)
    study = Study(
        tasks=tuple(tasks),
        default_profile=default_profile,
        seeds=seeds or (0,),
        runs=runs,
        normalisation=normalisation,
        data_seed=seeds_out[0],
        eval_seed=seeds_out[1],
    )
    return study, lookup


def _parse_runner(ctx: Collector, raw: dict[str, Any]) -> RunnerSettings:
    ctx.unknown_keys(raw, RUNNER_KEYS, "runner", "runner")
    defaults = RunnerSettings()

    def bad(fld: str, message: str) -> None:
        ctx.add("runner", fld, message, table="runner", key=fld)

    gpus: str | tuple[int, ...] = defaults.gpus
    value = raw.get("gpus", "auto")
    if value == "auto":
        gpus = "auto"
    elif (
        isinstance(value, list)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        and len(set(value)) == len(value)
    ):
        gpus = tuple(value)
    else:
        bad(
            "gpus",
            f'must be "auto" or a list of distinct GPU indices like [0, 1] ([] = CPU only), got {value!r}',
        )

    def positive_int(key: str, default: int) -> int:
        v = raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            bad(key, f"must be an integer >= 1, got {v!r}")
            return default
        return v

    jobs_per_gpu = positive_int("jobs_per_gpu", defaults.jobs_per_gpu)
    cpu_jobs = positive_int("cpu_jobs", defaults.cpu_jobs)
    crash = raw.get("on_worker_crash", defaults.on_worker_crash)
    if crash not in CRASH_POLICIES:
        bad("on_worker_crash", f"unknown policy {crash!r}" + did_you_mean(str(crash), CRASH_POLICIES))
        crash = defaults.on_worker_crash
    grace = raw.get("grace_s", defaults.grace_s)
    if not _finite(grace) or grace < 0:
        bad("grace_s", f"must be a number of seconds >= 0, got {grace!r}")
        grace = defaults.grace_s
    executor = raw.get("executor", defaults.executor)
    if executor not in EXECUTORS:
        bad("executor", f"unknown executor {executor!r}" + did_you_mean(str(executor), EXECUTORS))
        executor = defaults.executor
    slurm_raw = raw.get("slurm", {})
    if not isinstance(slurm_raw, dict):
        bad("slurm", "must be a table [runner.slurm]")
        slurm_raw = {}
    slurm = _parse_slurm(ctx, slurm_raw)
    return RunnerSettings(gpus, jobs_per_gpu, cpu_jobs, crash, float(grace), executor, slurm)


def _parse_app(ctx: Collector, raw: dict[str, Any]) -> AppSettings:
    """[app]: `bell = true|false` (a wrong value is a problem naming the file, line, table and field)."""
    ctx.unknown_keys(raw, tuple(APP_KEYS), "app", "app")
    values: dict[str, Any] = {}
    for key, spec in APP_KEYS.items():
        if key not in raw:
            continue
        problem = spec.check(raw[key])
        if problem is None:
            values[key] = raw[key]
        else:
            ctx.add("app", key, problem, table="app", key=key)
    return AppSettings(**values)


def _finite(value: Any) -> bool:
    """A number that compares sensibly: not a boolean, not nan (every comparison is false), not inf."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


# Values of [runner.slurm] become #SBATCH options: each must be one plain token of the form Slurm documents.
# (They are also shell-quoted when written, so a value can never become a command.)
_SLURM_FORMATS: dict[str, tuple[re.Pattern[str], str]] = {
    "partition": (
        re.compile(r"^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$"),
        'a partition name like "gpu" or "gpu,long"',
    ),
    "account": (re.compile(r"^[A-Za-z0-9_.-]+$"), 'an account name like "proj-123"'),
    "time": (
        re.compile(r"^((\d+-)?\d+(:\d+){0,2}|UNLIMITED|INFINITE)$"),
        'a Slurm time like "90" (minutes), "2:00:00" or "1-12:00:00"',
    ),
    "gres": (re.compile(r"^[A-Za-z0-9_.:,-]+$"), 'a GRES string like "gpu:1" or "gpu:a100:2"'),
    "mem": (re.compile(r"^\d+[KMGT]?$"), 'a memory size like "16G" or "8000M"'),
}


def _splits(line: str) -> bool:
    try:
        shlex.split(line)
    except ValueError:
        return False
    return True


def _parse_slurm(ctx: Collector, raw: dict[str, Any]) -> SlurmSettings:
    ctx.unknown_keys(raw, SLURM_KEYS, "runner.slurm", "runner.slurm")
    defaults = SlurmSettings()
    values: dict[str, Any] = {}

    def bad(fld: str, message: str) -> None:
        ctx.add("runner.slurm", fld, message, table="runner.slurm", key=fld)

    for key, (pattern, rule) in _SLURM_FORMATS.items():
        if key not in raw:
            continue
        v = raw[key]
        if not isinstance(v, str) or not pattern.match(v):
            bad(key, f"must be {rule}, got {v!r}")
        else:
            values[key] = v
    if "cpus" in raw:
        v = raw["cpus"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            bad("cpus", f"must be an integer >= 1 (CPUs per job), got {v!r}")
        else:
            values["cpus"] = v
    for key, what in (("sbatch", "an #SBATCH option"), ("setup", "a shell line")):
        lines = raw.get(key, [])
        if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
            bad(key, f"must be a list of strings, each {what}, got {lines!r}")
            continue
        good = []
        for line in lines:
            if any(c in line for c in "\n\r\0") or not line.strip():
                bad(key, f"each entry must be one non-empty line (no newline), got {line!r}")
            elif key == "sbatch" and not line.lstrip().startswith("-"):
                bad(key, f'each entry must be an option starting with "-", like "--qos=high", got {line!r}')
            elif key == "sbatch" and not _splits(line):
                bad(key, f"unbalanced quotes in {line!r}")
            else:
                good.append(line.strip())
        values[key] = tuple(good)
    if "poll_s" in raw:
        v = raw["poll_s"]
        if not _finite(v) or v <= 0:
            bad("poll_s", f"must be a number of seconds > 0, got {v!r}")
        else:
            values["poll_s"] = float(v)
    return SlurmSettings(**{**defaults.__dict__, **values})
