"""Placeholder until this area's commands land."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    return None
