"""`python -m engine world | sample | train RUN_DIR | eval RUN_DIR`. Exit 0 ok, 1 runtime failure, 2 usage."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.world import WorldSpec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    world = sub.add_parser("world", help="write the city table (real cities + Atlantis) as CSV")
    world.add_argument("--out", type=Path, default=None, help="CSV file (default: stdout)")
    _world_options(world)

    sample = sub.add_parser("sample", help="print N examples of a task as JSON lines")
    sample.add_argument("task")
    sample.add_argument("--set", dest="set_name", default="standard", help="standard | atlantis")
    sample.add_argument("-n", type=int, default=5)
    sample.add_argument("--seed", type=int, default=0)
    _world_options(sample)

    train = sub.add_parser("train", help="train the run in RUN_DIR (resumes from its newest checkpoint)")
    train.add_argument("run_dir", type=Path)
    train.add_argument("--restart", action="store_true", help="discard checkpoints and train from scratch")

    ev = sub.add_parser("eval", help="evaluate the run in RUN_DIR and write eval.json")
    ev.add_argument("run_dir", type=Path)
    ev.add_argument("--checkpoint", type=Path, default=None, help="default: RUN_DIR/checkpoints/final.pt")
    return parser


def _world_options(parser: argparse.ArgumentParser) -> None:
    """The `[world]` table of config.toml as options; defaults are the study's world (STUDY.md)."""
    from engine.world import PAPER_WORLD as W

    g = parser.add_argument_group("world (defaults: the study's)")
    g.add_argument("--min-population", type=int, default=W.min_population, metavar="N",
                   help=f"real cities with population >= N (default {W.min_population:,})")  # fmt: skip
    g.add_argument("--atlantis-cities", type=int, default=W.atlantis_cities, metavar="K")
    g.add_argument("--atlantis-center", type=float, nargs=2, default=list(W.atlantis_center),
                   metavar=("LON", "LAT"), help="degrees")  # fmt: skip
    g.add_argument("--atlantis-sigma", type=float, default=W.atlantis_sigma, metavar="DEG")


def _world_spec(args: argparse.Namespace) -> WorldSpec:
    from engine.world import WorldSpec

    lon, lat = args.atlantis_center
    return WorldSpec(args.min_population, args.atlantis_cities, (lon, lat), args.atlantis_sigma)


def main(argv: Sequence[str] | None = None) -> int:
    code = run_command(build_parser().parse_args(argv))
    # The work is done and its files are written: a SIGTERM during interpreter shutdown must not turn a clean
    # exit into "killed by signal 15" (the run's own handlers are gone by now).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return code


def run_command(args: argparse.Namespace) -> int:
    if args.command == "world":
        from engine.world import world_main

        return world_main(args.out, _world_spec(args))
    if args.command == "sample":
        from engine.tasks import sample_main

        return sample_main(args.task, args.set_name, args.n, args.seed, _world_spec(args))
    if args.command == "train":
        from engine.train import train_main

        return train_main(args.run_dir, restart=args.restart)
    from engine.evaluate import eval_main

    return eval_main(args.run_dir, checkpoint=args.checkpoint)


if __name__ == "__main__":
    sys.exit(main())
