"""Device selection: `auto | cpu | cuda | cuda:N`, the same in every component."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import torch

VALID_DEVICES = ("auto", "cpu", "cuda")


def validate_device_name(name: str) -> str:
    """Checks the spelling only (no torch import); raises ValueError naming the value."""
    base, _, index = name.partition(":")
    if base not in VALID_DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise ValueError(f"device must be one of auto, cpu, cuda or cuda:N, got {name!r}")
    return name


def resolve_device(name: str = "auto") -> "torch.device":
    """auto picks CUDA when present, else CPU; asking for CUDA without one is an error."""
    import torch

    validate_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available (torch {torch.__version__}); use 'auto' or 'cpu'")
    return torch.device(name)


@contextmanager
def limited_torch_threads(threads: int) -> Iterator[None]:
    """torch's CPU threads set to `threads` inside the block (0: unchanged), restored after.

    The setting is process-wide: torch ops on other threads meanwhile run with it too.
    """
    import torch

    before = torch.get_num_threads()
    if threads <= 0 or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def release_free_memory() -> None:
    """Hands memory the process has freed back to the OS (glibc's malloc_trim; elsewhere nothing).

    A map save or load allocates hundreds of MB of short-lived buffers (tensor copies, compressed
    archives) from worker threads; glibc keeps the freed pages in its arenas, so a long-running
    node's resident memory otherwise ratchets up with every save or reload."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl): nothing to trim
        pass
