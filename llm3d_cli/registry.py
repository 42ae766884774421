"""The subcommand registry: a plain dict filled by a decorator."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

AddArgs = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_args: AddArgs
    run: Run


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, add_args: AddArgs | None = None) -> Callable[[Run], Run]:
    """Registers `run(args) -> exit code` as `llm3d <name>`."""

    def register(run: Run) -> Run:
        if name in COMMANDS:
            raise ValueError(f"subcommand {name!r} registered twice")
        COMMANDS[name] = Command(name, help, add_args or (lambda parser: None), run)
        return run

    return register
