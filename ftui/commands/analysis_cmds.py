"""`ftui heatmap` and `ftui predict`: the analysis of evaluated runs (ftui.analysis) on the command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftui.analysis.names import MODELS, SCHEMES, SET_NAMES

# numpy, Rich and the analysis itself load only when one of these commands runs: every `ftui` command builds
# this module's parser, and `ftui list` must start fast.
if TYPE_CHECKING:
    from rich.console import Console

    from ftui.analysis.predict import CellScores
    from ftui.analysis.study import FamilyScores
    from ftui.registry import Registry

USAGE_ERROR = 2


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    heatmap = subparsers.add_parser(
        "heatmap",
        help="show a family's results as a normalised grid, or export it",
        description="Rows = the family's experiments, columns = evaluated tasks; 'T' marks trained tasks.",
    )
    heatmap.add_argument("name", metavar="NAME_OR_FAMILY", help="a [[heatmap]] name or a family")
    heatmap.add_argument(
        "--predict",
        metavar="MODEL",
        choices=MODELS,
        help=f"add predicted and error panels ({', '.join(MODELS)})",
    )
    heatmap.add_argument("--raw", action="store_true", help="raw metrics instead of normalised values")
    heatmap.add_argument("--sets", choices=SET_NAMES, default="atlantis", help="evaluation sets (atlantis)")
    heatmap.add_argument(
        "--norm", choices=SCHEMES, default=None, help="normalisation (default: the registry's)"
    )
    heatmap.add_argument(
        "--export", type=Path, metavar="FILE", help="write .png .pdf .svg (figure) or .csv .json"
    )
    heatmap.add_argument("--json", action="store_true", help="print the matrix as JSON")
    heatmap.set_defaults(func=run_heatmap)

    predict = subparsers.add_parser(
        "predict",
        help="score every prediction model of a family against its actual results",
        description="MAE, RMSE and R^2 of each model (all, trained and transfer cells), best first, "
        "and the mean error per task on transfer cells (a clearly positive value marks a divergent task).",
    )
    predict.add_argument("family", metavar="FAMILY", help="a family (or [[heatmap]]) with predict_from")
    predict.add_argument("--sets", choices=SET_NAMES, default="atlantis", help="evaluation sets (atlantis)")
    predict.add_argument(
        "--norm", choices=SCHEMES, default=None, help="normalisation (default: the registry's)"
    )
    predict.add_argument(
        "--model", choices=MODELS, default="max", help="model of the interference summary (max, best teacher)"
    )
    predict.add_argument("--json", action="store_true", help="print the scores as JSON")
    predict.set_defaults(func=run_predict)


def _load(args: argparse.Namespace) -> tuple[Registry, Path] | None:
    from ftui.registry import RegistryError, load_registry

    try:
        registry = load_registry(args.registry)
        registry.profile(args.profile)  # a --profile typo is an error here too, not a silent default
    except RegistryError as error:
        print(error, file=sys.stderr)
        return None
    return registry, registry.runs_dir(args.runs)


def _console() -> tuple[Console, bool]:
    from rich.console import Console

    console = Console()
    return console, console.color_system is not None and not console.no_color


def run_heatmap(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return USAGE_ERROR
    registry, runs_dir = loaded
    from ftui.analysis.export import ExportError, export, export_format
    from ftui.analysis.predict import PredictionError
    from ftui.analysis.study import AnalysisError, build_view

    try:
        if args.export is not None:
            export_format(args.export)
        view = build_view(
            registry, runs_dir, args.name, model=args.predict, scheme=args.norm, sets=args.sets, raw=args.raw
        )
    except (AnalysisError, PredictionError, ExportError) as error:
        print(f"ftui heatmap: {error}", file=sys.stderr)
        return USAGE_ERROR
    if args.export is not None:
        try:
            path = export(view, args.export)
        except OSError as error:
            print(f"ftui heatmap: cannot write {args.export}: {error}", file=sys.stderr)
            return 1
        print(json.dumps({"path": str(path)}) if args.json else path)
        return 0
    if args.json:
        print(json.dumps(view.to_dict(), indent=2))
        return 0
    from ftui.analysis.render import render_view

    console, colour = _console()
    console.print(render_view(view, colour=colour))
    return 0


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _scores_dict(scores: CellScores) -> dict[str, Any]:
    return {"mae": _number(scores.mae), "rmse": _number(scores.rmse), "r2": _number(scores.r2), "n": scores.n}


def scores_to_dict(result: FamilyScores) -> dict[str, Any]:
    target, source = result.target, result.source
    return {
        "family": target.family,
        "predict_from": source.family,
        "normalisation": target.scheme,
        "sets": target.sets,
        "seeds": list(target.seeds),
        "missing_cells": {"target": target.missing, "source": source.missing},
        "models": [
            {
                "model": item.model,
                "all": _scores_dict(item.all),
                "trained": _scores_dict(item.trained),
                "transfer": _scores_dict(item.transfer),
                "params": list(item.params),
            }
            for item in result.scores
        ],
        "interference": {
            "model": result.interference_model,
            "tasks": [
                {
                    "task": t.task,
                    "short": t.short,
                    "mean_error": _number(t.mean_error),
                    "cells": t.cells,
                    "rows": t.rows,
                }
                for t in result.interference
            ],
        },
    }


def _fmt(value: float, signed: bool = False, digits: int = 3) -> str:
    if not math.isfinite(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:.3g}"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def run_predict(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return USAGE_ERROR
    registry, runs_dir = loaded
    from rich import box
    from rich.table import Table

    from ftui.analysis.predict import PredictionError
    from ftui.analysis.study import AnalysisError, score_family

    try:
        result = score_family(
            registry, runs_dir, args.family, scheme=args.norm, sets=args.sets, interference_model=args.model
        )
    except (AnalysisError, PredictionError) as error:
        print(f"ftui predict: {error}", file=sys.stderr)
        return USAGE_ERROR
    if args.json:
        print(json.dumps(scores_to_dict(result), indent=2))
        return 0
    console, colour = _console()
    target, source = result.target, result.source
    console.print(
        f"{target.family} predicted from {source.family} · {target.scheme} normalisation · "
        f"{target.sets} sets · seeds {', '.join(str(s) for s in target.seeds)} · missing cells: "
        f"{target.missing} in {target.family}, {source.missing} in {source.family}",
        highlight=False,
    )
    table = Table(
        title="models, best first (by MAE over all cells)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 0, 0, 1),
        pad_edge=False,
    )
    table.add_column("model", no_wrap=True)
    for part in ("all", "trained", "transfer"):
        # no_wrap: never hide digits behind an ellipsis.
        table.add_column(f"{part}\nMAE", justify="right", no_wrap=True)
        table.add_column("\nRMSE", justify="right", no_wrap=True)
        table.add_column("\nR²", justify="right", no_wrap=True)
    for item in result.scores:
        cells: list[str] = []
        for scores in (item.all, item.trained, item.transfer):
            cells += [_fmt(scores.mae), _fmt(scores.rmse), _fmt(scores.r2, digits=2)]
        table.add_row(item.model, *cells)
    console.print(table)
    console.print(
        f"interference ({result.interference_model}): mean error = predicted - actual on the transfer cells "
        "of the runs trained on the task (positive = those runs did worse than predicted)",
        highlight=False,
    )
    summary = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0, 0, 2), pad_edge=False)
    summary.add_column("task")
    summary.add_column("mean error", justify="right")
    summary.add_column("cells", justify="right")
    summary.add_column("runs", justify="right")
    for task in result.interference:
        mean_error = task.mean_error
        style = "red" if colour and math.isfinite(mean_error) and mean_error > 0.1 else ""
        summary.add_row(
            f"{task.short} {task.task}",
            _fmt(mean_error, signed=True),
            str(task.cells),
            str(task.rows),
            style=style,
        )
    console.print(summary)
    return 0
