"""Stream plumbing for nodes and the bag reader, without rclpy: pairing two streams by stamp, and a newest-wins queue.

A mapper fed at 30 Hz that fuses at 5-10 Hz must drop frames; these classes decide which (the
stale ones) and count every drop, so the node can report them instead of lagging further and
further behind or growing a queue without bound.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")


class StampPairer(Generic[A, B]):
    """Pairs items of two streams (colour and depth) whose stamps differ by at most tolerance_ns.

    Each side keeps at most `buffer` unmatched items. When a pair forms, unmatched items older
    than it on either side can no longer pair with anything newer and are dropped (`unpaired`);
    an item pushed out of a full buffer is dropped too. tolerance_ns = 0 pairs exact stamps only.
    """

    def __init__(self, tolerance_ns: int = 0, buffer: int = 10) -> None:
        if tolerance_ns < 0:
            raise ValueError(f"tolerance_ns must be >= 0, got {tolerance_ns}")
        if buffer < 1:
            raise ValueError(f"buffer must be >= 1, got {buffer}")
        self.tolerance_ns = tolerance_ns
        self._first: deque[tuple[int, A]] = deque(maxlen=buffer)
        self._second: deque[tuple[int, B]] = deque(maxlen=buffer)
        self._lock = threading.Lock()
        self.unpaired = 0  # items dropped without a partner

    def add_first(self, stamp_ns: int, item: A) -> tuple[int, A, B] | None:
        """Adds a first-stream item; returns (stamp, first, second) when it completes a pair."""
        with self._lock:
            match = self._take_nearest(self._second, stamp_ns)
            if match is None:
                self._push(self._first, (stamp_ns, item))
                return None
            self._drop_older(self._first, stamp_ns)
            return stamp_ns, item, match

    def add_second(self, stamp_ns: int, item: B) -> tuple[int, A, B] | None:
        """Adds a second-stream item; returns (stamp of the first item, first, second) on a pair."""
        with self._lock:
            match_stamp = self._nearest_stamp(self._first, stamp_ns)
            if match_stamp is None:
                self._push(self._second, (stamp_ns, item))
                return None
            first = self._take_nearest(self._first, stamp_ns)
            self._drop_older(self._second, stamp_ns)
            return match_stamp, first, item

    def clear(self) -> None:
        with self._lock:
            self._first.clear()
            self._second.clear()

    def waiting(self) -> int:
        """Items of either stream still waiting for a partner."""
        with self._lock:
            return len(self._first) + len(self._second)

    # --------------------------------------------------------- internals (lock held)
    def _push(self, side: deque, entry: tuple) -> None:
        if len(side) == side.maxlen:
            self.unpaired += 1  # deque(maxlen) evicts the oldest silently: count it
        side.append(entry)

    def _nearest_stamp(self, side: deque, stamp_ns: int) -> int | None:
        best = None
        for s, _ in side:
            if abs(s - stamp_ns) <= self.tolerance_ns and (best is None or abs(s - stamp_ns) < abs(best - stamp_ns)):
                best = s
        return best

    def _take_nearest(self, side: deque, stamp_ns: int):
        """Removes and returns the nearest item within tolerance, dropping older ones; or None."""
        best = self._nearest_stamp(side, stamp_ns)
        if best is None:
            return None
        kept, found = deque(maxlen=side.maxlen), None
        for s, item in side:
            if s == best and found is None:
                found = item
            elif s < best:
                self.unpaired += 1
            else:
                kept.append((s, item))
        side.clear()
        side.extend(kept)
        return found

    def _drop_older(self, side: deque, stamp_ns: int) -> None:
        before = len(side)
        kept = [(s, item) for s, item in side if s >= stamp_ns]
        self.unpaired += before - len(kept)
        side.clear()
        side.extend(kept)


class LatestQueue(Generic[T]):
    """A bounded hand-off queue between callbacks and a worker thread: when full, the oldest
    waiting item is dropped (`dropped` counts them), so the worker always gets the newest data."""

    def __init__(self, maxsize: int = 1) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if len(self._items) >= self._maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout_s: float) -> T | None:
        """The oldest waiting item, or None after timeout_s or once closed."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout_s)
            return self._items.popleft() if self._items else None

    def clear(self) -> int:
        """Drops every waiting item (counted); returns how many."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self.dropped += n
            return n

    def close(self) -> None:
        """Wakes a waiting get(); later gets return None at once when empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
