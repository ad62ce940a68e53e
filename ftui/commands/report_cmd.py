"""`ftui report [--out DIR]`: heatmaps, prediction scores and the run table in one folder (ftui/report.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ftui.analysis.names import MODELS


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "report", help="write a self-contained folder to share: heatmaps, predictions, run table, index.html"
    )
    p.add_argument(
        "--out", type=Path, default=Path("ftui-report"), help="the folder to write (./ftui-report)"
    )
    p.add_argument("--model", choices=MODELS, default="max", help="prediction model of the figures (max)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from ftui.registry import RegistryError, load_registry
    from ftui.report import ReportError, build_report

    try:
        registry = load_registry(args.registry)
        registry.profile(args.profile)  # a --profile typo is an error, not a report that names it
        report = build_report(
            registry,
            Path(args.registry),
            registry.runs_dir(args.runs),
            args.out,
            profile=args.profile,
            model=args.model,
        )
    except RegistryError as error:
        print(error, file=sys.stderr)
        return 2
    except ReportError as error:
        print(f"ftui report: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"ftui report: cannot write {args.out}: {error}", file=sys.stderr)
        return 1
    figures = sum(1 for e in report.heatmaps if "png" in e.files)
    problems = [f"{e.name} ({e.sets}): {e.problem}" for e in report.heatmaps if e.problem]
    print(
        f"wrote {args.out}/index.html: {figures} heatmap figure(s), {len(report.runs)} run(s), "
        f"in {report.seconds:.1f} s"
    )
    for line in problems:
        print(f"  note: {line}")
    return 0
