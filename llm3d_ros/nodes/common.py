"""What every llm3d node shares besides its QoS profiles (llm3d_ros.qos): counting bad input.

A robot's drivers misbehave for long stretches (a camera at 30 Hz with a wrong encoding, a TF
tree with a gap); each bad message is counted for the node's status and diagnostics, and each kind
is logged at most once per period so that the log stays readable."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable


class BadInputs:
    """Counts of bad inputs by kind, and the last one; each kind logged at most every `period_s`.
    Thread-safe: subscription callbacks, workers and the status timer share it."""

    def __init__(self, kinds: Iterable[str], period_s: float, warn: Callable[[str], None]) -> None:
        self._counts = dict.fromkeys(kinds, 0)
        self._last = {"kind": "", "message": "", "stamp": 0.0}
        self._warned: dict[str, float] = {}
        self._period_s = period_s
        self._warn = warn
        self._lock = threading.Lock()

    def add(self, kind: str, message: str, stamp: float = 0.0) -> None:
        """Counts one bad input of `kind` (ROS time `stamp`, seconds) and logs it unless logged lately."""
        now = time.monotonic()
        with self._lock:
            self._counts[kind] += 1
            self._last = {"kind": kind, "message": message, "stamp": stamp}
            count = self._counts[kind]
            log = now - self._warned.get(kind, -1e9) >= self._period_s
            if log:
                self._warned[kind] = now
        if log:
            self._warn(f"{message} [{kind}: {count} so far]")

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def last(self) -> dict[str, object]:
        """The last bad input: kind, message and ROS stamp ("" and 0 before any)."""
        with self._lock:
            return dict(self._last)
