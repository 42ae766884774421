"""Bag errors: each names what is missing or damaged, and carries the report of what was read."""

from __future__ import annotations

from typing import Any


class BagError(RuntimeError):
    """A bag cannot be (fully) used; `report` (a reader.BagReport, or None) says what was read."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class BagCorruptError(BagError):
    """The bag file is truncated or damaged; messages before the damage were read."""


class BagTopicError(BagError):
    """A topic the frames need is not in the bag (the message lists the bag's topics)."""


class BagTransformError(BagError):
    """Camera poses cannot be looked up in the bag's TF (the message names the frames known)."""
