"""Progress display for long work: a tqdm bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """Wraps `items`; in CI or a log file it prints a line every ~10% instead of redrawing."""
    interactive = sys.stderr.isatty()
    return iter(tqdm(items, desc=desc, total=total, dynamic_ncols=True, leave=True,
                     mininterval=0.2 if interactive else 5.0, disable=None if interactive else False))


def progress_bar(total: int | None, desc: str) -> tqdm:
    """A bar to `update()` by hand (callbacks, not loops); same display rules as `progress`."""
    interactive = sys.stderr.isatty()
    return tqdm(desc=desc, total=total, dynamic_ncols=True, leave=True, mininterval=0.2 if interactive else 5.0,
                disable=None if interactive else False)
