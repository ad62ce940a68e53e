"""The `ftui` command. Without a sub-command it opens the app.

Exit codes: 0 ok, 1 failure, 2 usage or config error. Heavy imports (Textual, matplotlib) happen inside the
commands that need them, so `ftui list` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ftui import __version__
from ftui.stdio import quiet_on_closed_stdout

# Each module registers its sub-commands; the order is the order of `ftui --help`.
COMMAND_MODULES = (
    "ftui.commands.registry_cmds",
    "ftui.commands.queue_cmds",
    "ftui.commands.control_cmds",
    "ftui.commands.analysis_cmds",
    "ftui.commands.report_cmd",
)
# The module that registers each command, so that `ftui list ...` builds (and imports) only the parser of its
# own module (tests/ftui/test_cli_parser.py checks this against what the modules register).
_QUEUE, _CONTROL = "ftui.commands.queue_cmds", "ftui.commands.control_cmds"
COMMAND_MODULE = {
    "validate": "ftui.commands.registry_cmds",
    "prepare": "ftui.commands.registry_cmds",
    **dict.fromkeys(("launch", "eval", "cancel", "retry", "list", "logs", "worker"), _QUEUE),
    **dict.fromkeys(("pause", "resume", "rm", "clean", "wait"), _CONTROL),
    "heatmap": "ftui.commands.analysis_cmds",
    "predict": "ftui.commands.analysis_cmds",
    "report": "ftui.commands.report_cmd",
}
_VALUED = ("--registry", "--runs", "--profile")  # the global options that take a value


def command_named(argv: Sequence[str]) -> str | None:
    """The command of `argv` when it is plain to see: the first word after global options spelled in full
    (`--registry FILE`, `--runs=DIR`, `--read-only`); None otherwise (no command, help, --version, an
    abbreviated option, a typo: the whole parser answers those)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in _VALUED:
            i += 2
        elif word == "--read-only" or word.startswith(tuple(f"{name}=" for name in _VALUED)):
            i += 1
        else:
            return word if word in COMMAND_MODULE else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `ftui` parser; with `command` (a key of COMMAND_MODULE), only that command's module's
    sub-commands (the same parser for that command, without importing the others)."""
    parser = argparse.ArgumentParser(
        prog="ftui",
        description="Terminal experiment manager for fine-tuning studies. Without a command: open the app.",
    )
    parser.add_argument("--version", action="version", version=f"ftui {__version__}")
    parser.add_argument(
        "--registry",
        type=Path,
        default=Path("experiments.toml"),
        help="the registry file (./experiments.toml)",
    )
    parser.add_argument(
        "--runs", type=Path, default=None, help="the runs folder (default: the registry's, else ./runs)"
    )
    parser.add_argument("--profile", default=None, help="size profile (default: the registry's)")
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="browse only: no launch, cancel or retry (automatic for a results archive)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES if command is None else (COMMAND_MODULE[command],):
        importlib.import_module(name).add_commands(subparsers)
    for sub_parser in subparsers.choices.values():
        _accept_global_options(sub_parser)
    return parser


def _accept_global_options(command: argparse.ArgumentParser) -> None:
    """Global options after the command too (`ftui launch 'ft1-*' --profile smoke`); SUPPRESS keeps the value
    given before the command when they are absent after it."""
    hidden = argparse.SUPPRESS
    command.add_argument("--registry", type=Path, default=hidden, help=hidden)
    command.add_argument("--runs", type=Path, default=hidden, help=hidden)
    command.add_argument("--profile", default=hidden, help=hidden)
    command.add_argument("--read-only", action="store_true", default=hidden, help=hidden)


# A folder of results brought back from another machine (scripts/sweep.py writes it): browse only.
RESULTS_MARKER = "RESULTS.json"
CHANGING_COMMANDS = frozenset(
    {"launch", "eval", "cancel", "retry", "prepare", "worker", "pause", "resume", "rm", "clean"}
)


# A dumb terminal (Emacs shell, some CI logs) shows cursor moves and colours as garbage: the app needs a real
# one. The commands print plain lines and work there.
DUMB_TERMINAL = (
    "ftui: the app needs a terminal that understands cursor movement; TERM=dumb does not.\n"
    "These commands work here: ftui list, ftui logs NAME [-f], ftui launch PATTERN, ftui eval PATTERN,\n"
    "ftui cancel PATTERN, ftui retry PATTERN, ftui heatmap FAMILY, ftui predict FAMILY, ftui validate\n"
    "(ftui --help lists them all). Or open the app from a terminal with TERM=xterm-256color, tmux or screen."
)


def is_results_archive(runs: Path | None) -> bool:
    return runs is not None and (runs / RESULTS_MARKER).is_file()


@quiet_on_closed_stdout
def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_named(words))
    args = parser.parse_args(words)
    if args.command is None:
        if os.environ.get("TERM") == "dumb":
            print(DUMB_TERMINAL, file=sys.stderr)
            return 2
        from ftui.app import run_app

        args.read_only = args.read_only or is_results_archive(args.runs)
        return run_app(args)
    if args.command in CHANGING_COMMANDS and (args.read_only or is_results_archive(args.runs)):
        where = args.runs or "the runs folder"
        print(f"ftui: {where} is read-only here; `ftui {args.command}` would change it", file=sys.stderr)
        return 2
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
