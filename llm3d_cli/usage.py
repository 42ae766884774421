"""User mistakes on the command line: how they are found and how `llm3d` reports them.

A mistake (a path that does not exist, a number out of range, a corrupt input file, a config key
that does not exist) becomes one line on stderr, `llm3d <command>: error: <message>`, and exit
status 2; argparse's own errors take the same one-line form. Everything else is an internal error
and keeps its traceback (exit 1). `llm3d -v` prints the traceback of a user error too.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

# The packages of this project: a ValueError raised by their code is a message meant for the user
# (house style: public API errors name the bad value; asserts guard internal invariants).
PROJECT_PACKAGES = frozenset({"llm3d_core", "llm3d_cli", "llm3d_ros", "llm3d_bench", "sim"})

# The project's error types that always mean bad input, by "module.Class" so that reporting one
# never imports a module the command did not load (an exception of a class implies its module is loaded).
USER_ERROR_TYPES = (
    "llm3d_core.config.ConfigError",
    "llm3d_core.bags.errors.BagError",
    "llm3d_core.mapping.map_files.MapFileError",
    "llm3d_core.model.checkpoint_io.CheckpointError",
    "llm3d_core.model.llm.LlmLoadError",
    "llm3d_core.assets.ModelNotFoundError",
    "sim.habitat_backend.HabitatUnavailableError",
)

# OS errors about a path the user named.
PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


class UsageError(Exception):
    """A mistake in how a command was called, found after parsing (a missing input, a bad combination of
    options); `llm3d` prints the message as one line and exits 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`llm3d sim render: error: ...`) instead of the usage block; still exit 2.
    Subparsers inherit the class, so every subcommand reports the same way."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def one_line(text: str) -> str:
    """`text` with its lines joined: a message that spans lines (a YAML parser's) still fits one."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _project_class(cls: type) -> bool:
    return cls.__module__.partition(".")[0] in PROJECT_PACKAGES


def _raised_by_project(err: BaseException) -> bool:
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).partition(".")[0] in PROJECT_PACKAGES


def is_user_error(err: BaseException) -> bool:
    """Whether `err` reports bad input rather than a bug: UsageError, one of USER_ERROR_TYPES, an OS error
    about a path, or a ValueError of the project (its own class, or raised by its code). A ValueError
    from inside a library (numpy, torch, yaml) is a bug in how the project called it."""
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(err).__mro__}
    if isinstance(err, (UsageError, *PATH_ERRORS)) or names & set(USER_ERROR_TYPES):
        return True
    return isinstance(err, ValueError) and (_project_class(type(err)) or _raised_by_project(err))


def user_message(err: BaseException) -> str:
    """One line for the user; an OS error as `<reason>: <path>` (without `[Errno N]`)."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        return f"{err.strerror}: {err.filename}"
    return one_line(str(err)) or type(err).__name__


def prog_of(args: argparse.Namespace) -> str:
    """`llm3d <command> [<subcommand>]` of parsed arguments (bag, data and sim have subcommands)."""
    sub = getattr(args, f"{args.command}_command", None)
    return " ".join(["llm3d", args.command] + ([sub] if sub else []))


# ----------------------------------------------------------------------------- argparse types
def _number(convert, what: str, ok):
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


positive_int = _number(int, "an integer >= 1", lambda v: v >= 1)
non_negative_int = _number(int, "an integer >= 0", lambda v: v >= 0)
positive_float = _number(float, "a number > 0", lambda v: math.isfinite(v) and v > 0)
non_negative_float = _number(float, "a number >= 0", lambda v: math.isfinite(v) and v >= 0)


def text(value: str) -> str:
    """A query or instruction: something besides whitespace."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


# ----------------------------------------------------------------------------- checks after parsing
def check_device(args: argparse.Namespace) -> None:
    """--device of any command, before a model loads or a node starts: auto | cpu | cuda | cuda:N."""
    device = getattr(args, "device", None)
    if device:
        from llm3d_core.device import validate_device_name

        try:
            validate_device_name(device)
        except ValueError:
            raise UsageError(f"argument --device: must be auto, cpu, cuda or cuda:N, got {device!r}") from None


def check_seed(seed: int | None, option: str = "--seed") -> None:
    """A procedural scene seed must lie in a split's range."""
    if seed is None:
        return
    from sim.scenes.scene import split_of

    try:
        split_of(seed)
    except ValueError as err:
        raise UsageError(f"argument {option}: {err}") from None


def check_dir(path: Path | None, option: str, what: str = "folder") -> None:
    if path is not None and not path.is_dir():
        raise UsageError(f"argument {option}: no such {what}: {path}")


def check_file(path: Path | None, option: str, what: str = "file") -> None:
    if path is not None and not path.is_file():
        raise UsageError(f"argument {option}: no such {what}: {path}")


def check_checkpoint(path: Path | None, option: str = "--ckpt") -> None:
    """Before a model is built: the folder holds config.json (CheckpointError later names a corrupt one)."""
    if path is not None and not (path / "config.json").is_file():
        raise UsageError(f"argument {option}: {path} is not an llm3d checkpoint (no {path / 'config.json'})")


def check_map(path: Path | None, option: str = "--map") -> None:
    """Before a model is loaded: the folder holds a saved map (map.json)."""
    if path is not None and not (path / "map.json").is_file():
        raise UsageError(f"argument {option}: no saved map at {path} (no {path / 'map.json'}; `llm3d map` writes one)")


def check_new_path(path: Path, option: str = "--out") -> None:
    """An output that is never overwritten must not exist yet."""
    if path.exists():
        raise UsageError(f"argument {option}: {path} exists already (choose another)")


def report(args: argparse.Namespace, err: BaseException) -> int:
    """Prints a user error as one line (with its traceback under -v); the exit status 2."""
    if getattr(args, "verbose", False):
        import traceback

        traceback.print_exception(err)
    print(f"{prog_of(args)}: error: {user_message(err)}", file=sys.stderr)
    return 2
