"""`ftui COMMAND ...` builds only its command's module's parser (ftui/cli.py COMMAND_MODULE): the same parser
for that command, the whole one whenever the command is not plain to see."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

import pytest

from ftui import cli


def sub_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_command_module_is_what_the_modules_register() -> None:
    registered: dict[str, str] = {}
    for name in cli.COMMAND_MODULES:
        parser = argparse.ArgumentParser(prog="ftui")
        importlib.import_module(name).add_commands(parser.add_subparsers())
        registered |= dict.fromkeys(sub_parsers(parser), name)
    assert registered == cli.COMMAND_MODULE


@pytest.mark.parametrize("command", sorted(cli.COMMAND_MODULE))
def test_a_command_s_own_parser_is_the_whole_parser_s(command: str) -> None:
    whole, own = sub_parsers(cli.build_parser())[command], sub_parsers(cli.build_parser(command))[command]
    assert own.format_help() == whole.format_help()
    assert own.format_usage() == whole.format_usage()

    def options(parser: argparse.ArgumentParser) -> list[Any]:
        return [(a.dest, a.option_strings, a.nargs, a.default, a.choices) for a in parser._actions]

    assert options(own) == options(whole)


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["list"], "list"),
        (["list", "--json"], "list"),
        (["--registry", "x.toml", "list", "ft1-*"], "list"),
        (["--registry", "list", "launch"], "launch"),  # "list" is --registry's value here
        (["--runs=r", "--profile", "smoke", "--read-only", "logs", "a"], "logs"),
        ([], None),
        (["--help"], None),
        (["-h", "list"], None),
        (["--version"], None),
        (["--reg", "x.toml", "list"], None),  # an abbreviation: argparse decides
        (["lsit"], None),  # a typo: the whole parser names the commands
        (["--", "list"], None),
        (["--registry"], None),
    ],
)
def test_command_named(argv: list[str], command: str | None) -> None:
    assert cli.command_named(argv) == command


def test_a_typo_is_answered_with_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["lsit"])
    err = capsys.readouterr().err
    assert "invalid choice: 'lsit'" in err and "'report'" in err and "'list'" in err
