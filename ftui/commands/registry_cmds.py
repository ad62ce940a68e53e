"""`ftui validate` and `ftui prepare`: the registry on the command line (`ftui list` is in queue_cmds).

Exit codes: 0 ok, 2 invalid registry or bad request (every problem printed to stderr, never a traceback).
`registry_rows` builds the table rows so the queue commands can reuse (and extend) them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ftui.atomic import atomic_write_text
from ftui.registry import (
    Registry,
    RegistryError,
    Run,
    clash_problem,
    config_status,
    load_registry,
    render_config,
)
from ftui.rundir import CONFIG, started_on_disk


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    validate = subparsers.add_parser(
        "validate", help="check the registry and print the expanded sweep", description=_doc(cmd_validate)
    )
    validate.add_argument("--json", action="store_true", help="machine-readable output")
    validate.set_defaults(func=cmd_validate)

    prepare = subparsers.add_parser(
        "prepare", help="write the resolved config.toml of matching runs", description=_doc(cmd_prepare)
    )
    prepare.add_argument("patterns", nargs="+", metavar="PATTERN", help="experiment, run or family (globs)")
    prepare.add_argument(
        "--force", action="store_true", help="overwrite the config of a run that already started"
    )
    prepare.set_defaults(func=cmd_prepare)


def _doc(func: Any) -> str:
    return (func.__doc__ or "").strip()


# ---------------------------------------------------------------------------------------------------------
# Shared pieces


def registry_rows(registry: Registry, runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row per experiment that has runs in `runs` (registry order), as plain JSON-able values.

    Keys: name, family, kind, tasks (engine names), codes (short codes), parent, warmup, seeds, runs (keys).
    """
    by_exp: dict[str, list[Run]] = {}
    for run in runs:
        by_exp.setdefault(run.experiment.name, []).append(run)
    rows: list[dict[str, Any]] = []
    for exp in registry.experiments:
        if exp.name not in by_exp:
            continue
        rows.append(
            {
                "name": exp.name,
                "family": exp.family,
                "kind": exp.kind,
                "tasks": list(exp.tasks),
                "codes": [registry.study.short(t) for t in exp.tasks],
                "parent": exp.parent,
                "warmup": exp.warmup,
                "seeds": [r.seed for r in by_exp[exp.name]],
                "runs": [r.key for r in by_exp[exp.name]],
            }
        )
    return rows


def rows_table(rows: Sequence[dict[str, Any]], title: str | None = None) -> Any:
    """A Rich table of `registry_rows` output."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in ("name", "family", "kind", "tasks", "parent", "seeds"):
        table.add_column(column, no_wrap=column in ("name", "tasks"))
    for row in rows:
        codes = " ".join(row["codes"]) + (" +wb" if row["warmup"] else "")
        table.add_row(
            row["name"],
            row["family"] or "",
            row["kind"],
            codes,
            row["parent"] or "",
            ", ".join(str(s) for s in row["seeds"]),
        )
    return table


def summary_line(registry: Registry, runs: Sequence[Run]) -> str:
    experiments = len({r.experiment.name for r in runs})
    seeds = sorted({r.seed for r in runs}, key=lambda s: [r.seed for r in runs].index(s))
    plural = "s" if len(seeds) != 1 else ""
    return f"{experiments} experiments, {len(runs)} runs (seed{plural} {', '.join(str(s) for s in seeds)})"


def report_error(error: RegistryError, as_json: bool = False) -> int:
    """Print every problem to stderr (and as JSON on stdout with --json); the exit code is 2."""
    for problem in error.problems:
        print(f"error: {problem}", file=sys.stderr)
    if as_json:
        print(json.dumps({"valid": False, "problems": [p.to_json() for p in error.problems]}, indent=2))
    return 2


def _console() -> Any:
    from rich.console import Console

    return Console()


# ---------------------------------------------------------------------------------------------------------
# Commands


def cmd_validate(args: argparse.Namespace) -> int:
    """Check experiments.toml and print the expanded sweep: every experiment with its tasks (short
    codes), parent and seeds. Exit 0 when valid; 2 with every problem listed (file:line: where: field: what
    is allowed).
    """
    try:
        registry = load_registry(args.registry)
        if args.profile is not None:
            registry.profile(args.profile)
    except RegistryError as error:
        return report_error(error, args.json)
    runs = registry.all_runs()
    rows = registry_rows(registry, runs)
    if args.json:
        payload = {
            "valid": True,
            "registry": str(registry.path),
            "runs_dir": str(registry.runs_dir(args.runs)),
            "default_profile": registry.study.default_profile,
            "profiles": list(registry.profiles),
            "tasks": [{"name": t.name, "short": t.short} for t in registry.study.tasks],
            "families": {name: list(members) for name, members in registry.families.items()},
            "heatmaps": [asdict(h) for h in registry.heatmaps],
            "experiments": rows,
            "summary": summary_line(registry, runs),
        }
        print(json.dumps(payload, indent=2))
        return 0
    console = _console()
    console.print(rows_table(rows, title=f"{registry.path}: the expanded sweep"))
    console.print(summary_line(registry, runs), highlight=False)
    profiles = ", ".join(registry.profiles)
    console.print(f"profiles: {profiles} (default {registry.study.default_profile})", highlight=False)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Write the resolved config.toml of every run matching the patterns and print the run folders, so a run
    can be inspected before launch or executed by hand: `python -m engine train <folder>`. A run that already
    started keeps its config unless --force. Nothing is written if any run cannot be prepared.
    """
    try:
        registry = load_registry(args.registry)
        profile = registry.profile(args.profile).name
        runs = registry.runs(args.patterns)
        runs_dir = registry.runs_dir(args.runs)
        plan = plan_configs(registry, runs, runs_dir, profile, force=args.force)
    except RegistryError as error:
        return report_error(error)
    written = 0
    for _run, path, text, status in plan:
        if status != "same":
            atomic_write_text(path, text)
            written += 1
        print(path.parent)
    unchanged = len(plan) - written
    print(
        f"{written} config(s) written, {unchanged} unchanged (profile {profile!r}, runs folder {runs_dir})",
        file=sys.stderr,
    )
    return 0


def plan_configs(
    registry: Registry, runs: Sequence[Run], runs_dir: Path, profile: str, *, force: bool = False
) -> list[tuple[Run, Path, str, str]]:
    """(run, config path, text, status 'new'|'same'|'changed') for each run; RegistryError listing every run
    that already started with a different config (unless force), before anything is written.
    """
    plan: list[tuple[Run, Path, str, str]] = []
    clashes = []
    for run in runs:
        config = registry.resolve_config(run, profile)
        path = Path(runs_dir) / run.rel_dir / CONFIG
        status = config_status(path, config)
        if status == "changed" and started_on_disk(path.parent) and not force:
            clashes.append(clash_problem(path, run))
        plan.append((run, path, render_config(config, registry, profile), status))
    if clashes:
        raise RegistryError(clashes)
    return plan
