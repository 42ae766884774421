"""`llm3d` console entry point.

A user mistake ends as one line on stderr and exit status 2, whichever subcommand finds it
(llm3d_cli/usage.py says what counts as one); any other exception keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from llm3d_cli import (  # noqa: F401  (they register their subcommands)
    ask_cmd,
    bag_cmd,
    bench_cmd,
    bringup_cmd,
    data_cmd,
    demo_cmd,
    doctor,
    eval_cmd,
    graft_cmd,
    ground_cmd,
    map_cmd,
    navigate_cmd,
    plan_cmd,
    sim_cmd,
    snapshot_cmd,
    train_cmd,
)
from llm3d_cli.registry import COMMANDS
from llm3d_cli.usage import Parser, check_device, is_user_error, report
from llm3d_core import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="llm3d", description="A live 3D language model for ROS 2 robots.")
    parser.add_argument("--version", action="version", version=f"llm3d {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS.values():
        cmd.add_args(sub.add_parser(cmd.name, help=cmd.help, description=cmd.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        check_device(args)
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if not is_user_error(err):
            raise  # a bug: the traceback is what a report needs
        return report(args, err)


if __name__ == "__main__":
    sys.exit(main())
