"""Saves that survive a power cut, not only a crash: fsync before the rename that commits them.

`os.replace(tmp, path)` makes a save atomic for readers and against a process crash, but not
against the machine losing power (a robot's battery, its e-stop cutting the computer): the
kernel may commit the rename before the data of the files it names reaches the disk, and after
the reboot the manifest names chunk files that are empty. A robot's map must then be started
again from nothing. The order that prevents it is the one databases use: write the data files,
fsync them, write the manifest to a temporary name, fsync it, rename it over the old one, fsync
the folder (the rename itself is an entry of the folder).
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_file(path: str | Path) -> None:
    """Flushes a written file's data and size to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flushes a folder's entries (renames, new files) to the disk; a no-op where folders cannot be
    opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (network mounts) refuse fsync on a folder; the data files are flushed
    finally:
        os.close(fd)


def durable_replace(tmp: str | Path, target: str | Path) -> None:
    """Commits the written file `tmp` as `target`: fsync it, rename it over `target`, fsync the folder."""
    fsync_file(tmp)
    os.replace(tmp, target)
    fsync_dir(Path(target).parent)
