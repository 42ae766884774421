"""The time-indexed transform tree behind TF lookups: pure numpy, no rclpy.

tf2 cannot be installed from PyPI, so this is the part of it the project needs, shared by the
live mapper node (fed from /tf and /tf_static by `llm3d_ros.tf_buffer`) and the bag reader (fed
from a recorded bag's /tf and /tf_static), so a recorded frame gets the same pose offline as live.
It looks transforms up by chaining through the tree, interpolating translation linearly and
rotation by slerp at the requested stamp.

Convention (as tf2's lookup_transform): `lookup(target, source, t)` returns the 4x4 matrix that
maps points in `source` coordinates into `target` coordinates, i.e. the pose of `source` in
`target`. The mapper asks for lookup(map_frame, camera_optical_frame, image stamp).

What a sample may change (issue #21: one bad /tf message stopped mapping for good):
- Static (/tf_static) and dynamic (/tf) transforms live in separate tables, and a frame is in
  at most one. A /tf sample for a frame that has a static transform is ignored: the static one
  stays authoritative (equal or not). A /tf_static sample for a frame with a dynamic history
  replaces it (static wins: a mount is not expected to move). Both are reported once per
  (parent, child) through `TransformUpdate.first`, so the caller can log them once.
- Each dynamic frame keeps a time-sorted history bounded to `cache_s`. As in tf2 (TF_OLD_DATA),
  a sample older than the frame's newest minus cache_s is rejected ("past").
- With the receiver's clock (`now_ns`, a live node), a /tf sample stamped more than
  `max_future_s` ahead of it is rejected ("future"): an odom sample stamped a year ahead used to
  become the newest sample, whose cache cut deleted the whole history and froze every later
  lookup. The cut is anchored at min(newest sample, now), so even an accepted future-dated
  sample (AMCL forward-dates map->odom by its transform_tolerance) cannot delete the recent past.
  Stamps are not compared with the clock in the past direction: a bag played into a live node
  without a clock carries the stamps of the day it was recorded, and tf2 takes those too.
- A clock that jumps back by more than CLOCK_BACK_TOLERANCE_S (sim time reset, bag looped with
  --clock, sim time switched on) clears every dynamic history, keeping static transforms, as
  tf2_ros's Buffer does on a backward time jump. A clock reading of 0 (sim time before the
  first /clock message) counts as no clock.
- Without a clock (a bag read offline), stamps are the only time there is: a sample more than
  max_future_s ahead of the frame's newest, or older than newest - cache_s, is held, not stored.
  If JUMP_CONFIRM samples in a row move on from it, the stream really jumped (a gap in the
  recording, or a first sample that was itself the outlier) and the history restarts from them;
  a sample that fits the history drops the held ones as outliers (counted "future" / "past").
"""

from __future__ import annotations

import bisect
import enum
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from llm3d_core.messages import ConversionError, compose_matrix, normalize_quaternion, quaternion_slerp

_MAX_DEPTH = 64  # longer parent chains are treated as a loop in the published tree
JUMP_CONFIRM = 3  # consecutive samples that confirm a jump of a frame's stream
CLOCK_BACK_TOLERANCE_S = 1.0  # smaller backward clock steps (NTP corrections) keep the history


class TransformError(LookupError):
    """A transform cannot be looked up; the message names the frames, the stamp and what is known."""


class Notice(str, enum.Enum):
    """What set_transform did with a sample other than simply storing it."""

    NONE = ""  # stored
    STATIC_CONFLICT = "static_conflict"  # /tf sample for a frame with a static transform: ignored
    STATIC_OVER_DYNAMIC = "static_over_dynamic"  # /tf_static replaced a frame's dynamic history
    REPARENTED = "reparented"  # a dynamic frame got a new parent: its history restarts
    FUTURE = "future"  # stamped more than max_future_s after the clock: rejected
    PAST = "past"  # older than the frame's history allows: rejected
    HELD = "held"  # jumped away from the frame's history: held until later samples confirm or drop it
    OUTLIER_DROPPED = "outlier_dropped"  # stored; held samples it contradicts were dropped (counted too)
    JUMP = "jump"  # stored; confirmed a jump of the frame's stream, whose history restarted


_STORED = {Notice.NONE, Notice.STATIC_OVER_DYNAMIC, Notice.REPARENTED, Notice.OUTLIER_DROPPED, Notice.JUMP}
_UNCOUNTED = {Notice.NONE, Notice.HELD, Notice.OUTLIER_DROPPED}  # the last two count the dropped samples
ONCE_PER_PAIR = frozenset({Notice.STATIC_CONFLICT, Notice.STATIC_OVER_DYNAMIC, Notice.REPARENTED})


@dataclass(frozen=True)
class TransformUpdate:
    """The outcome of one set_transform() call; `message` explains any notice in words."""

    notice: Notice = Notice.NONE
    message: str = ""
    first: bool = False  # the first notice of this kind for this (parent, child): log it once

    @property
    def stored(self) -> bool:
        return self.notice in _STORED


@dataclass
class _Edge:
    """The transform of one child frame relative to its parent: static, or a time-sorted history."""

    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)  # ns, ascending
    translations: list[np.ndarray] = field(default_factory=list)  # (3,) each
    rotations: list[np.ndarray] = field(default_factory=list)  # (4,) unit quaternions (x, y, z, w)
    held: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)  # samples of an unconfirmed jump
    held_direction: int = 0  # +1 ahead of the history, -1 behind it

    def insert(self, stamp_ns: int, t: np.ndarray, q: np.ndarray) -> None:
        i = bisect.bisect_left(self.stamps, stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            self.translations[i], self.rotations[i] = t, q
        else:
            self.stamps.insert(i, stamp_ns)
            self.translations.insert(i, t)
            self.rotations.insert(i, q)


def format_stamp(ns: int) -> str:
    """Nanoseconds as seconds with millisecond digits, for error messages."""
    return f"{ns * 1e-9:.3f} s"


def _format_span(ns: int) -> str:
    s = abs(ns) * 1e-9
    return f"{s / 86400:.1f} days" if s >= 86400 else f"{s:.3f} s"


class TransformCore:
    """The transform tree over time; thread-safe; no ROS dependency beyond numpy.

    cache_s bounds each dynamic history: samples older than min(newest, now) minus cache_s are
    dropped, so memory stays bounded under a continuous /tf stream. max_future_s bounds how far
    ahead of the receiver's clock a /tf sample may be stamped (5 s: more than AMCL-style
    forward-dated map->odom transforms, typically 0.2-2 s, plus seconds of skew between robot
    computers, while a wrong clock, hours or a year off, is caught; an accepted future sample
    can hold the "latest" pose for at most that long).
    """

    def __init__(self, cache_s: float = 10.0, max_future_s: float = 5.0) -> None:
        if not cache_s > 0:
            raise ValueError(f"cache_s must be > 0, got {cache_s}")
        if not max_future_s > 0:
            raise ValueError(f"max_future_s must be > 0, got {max_future_s}")
        self.cache_ns = int(cache_s * 1e9)
        self.max_future_ns = int(max_future_s * 1e9)
        self._static: dict[str, _Edge] = {}
        self._dynamic: dict[str, _Edge] = {}
        self._last_now_ns: int | None = None
        # Per notice: samples (future/past include held samples dropped later), or events (jump,
        # clock_jump_back, reparented, static_over_dynamic).
        self._counts: dict[str, int] = {n.value: 0 for n in Notice if n not in _UNCOUNTED}
        self._counts["clock_jump_back"] = 0
        self._reported: set[tuple[Notice, str, str]] = set()
        self._changed = threading.Condition()

    # ------------------------------------------------------------ input
    def set_transform(self, parent: str, child: str, stamp_ns: int, translation: Iterable[float],
                      rotation: Iterable[float], static: bool = False, now_ns: int | None = None) -> TransformUpdate:
        """Adds one transform (pose of `child` in `parent`); invalid input raises TransformError.

        now_ns: the receiver's clock (a live node's ROS time); None or 0 where there is none (a bag
        read offline, sim time before /clock). Returns what happened to the sample; only samples
        whose update is `stored` change lookups.
        """
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child or parent == child:
            raise TransformError(f"a transform needs two different, non-empty frame ids, got '{parent}' -> '{child}'")
        try:
            t = np.asarray(list(translation), dtype=np.float64)
            q = normalize_quaternion(list(rotation))
            compose_matrix(t, q)  # validates the translation too
        except ConversionError as err:
            raise TransformError(f"transform {parent} -> {child}: {err}") from err
        now = now_ns or None
        with self._changed:
            self._observe_clock(now)
            if static:
                update = self._set_static(parent, child, t, q)
            else:
                update = self._set_dynamic(parent, child, int(stamp_ns), t, q, now)
            if update.notice not in _UNCOUNTED:
                self._counts[update.notice.value] += 1
            if update.stored:
                self._changed.notify_all()
        return update

    def observe_clock(self, now_ns: int | None) -> str:
        """Notes the receiver's clock; after a backward jump the dynamic histories are cleared and the
        returned message says so ('' otherwise). set_transform(now_ns=...) does this itself; a caller
        calls it first only to log the jump."""
        with self._changed:
            return self._observe_clock(now_ns or None)

    def clear(self) -> None:
        """Forgets every transform (the counters and what was reported stay)."""
        with self._changed:
            self._static.clear()
            self._dynamic.clear()

    # ------------------------------------------------------------ queries
    def frames(self) -> dict[str, str]:
        """child -> parent of every known frame."""
        with self._changed:
            return {child: edge.parent for child, edge in (self._dynamic | self._static).items()}

    def counts(self) -> dict[str, int]:
        """How many samples got each notice, and how often the clock jumped back, since creation."""
        with self._changed:
            return dict(self._counts)

    def lookup(self, target: str, source: str, stamp_ns: int = 0) -> np.ndarray:
        """(4, 4) transform mapping `source` coordinates into `target` at `stamp_ns` (0: latest)."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if not target or not source:
            raise TransformError(f"empty frame id in lookup '{target}' <- '{source}'")
        with self._changed:
            if target == source:
                return np.eye(4)
            up_source = self._chain(source, target)
            up_target = self._chain(target, source)
            in_source = {frame: i for i, (frame, _) in enumerate(up_source)}
            common = next((j for j, (frame, _) in enumerate(up_target) if frame in in_source), None)
            if common is None:
                raise TransformError(
                    f"'{target}' and '{source}' are not connected: '{source}' leads up to '{up_source[-1][0]}', "
                    f"'{target}' up to '{up_target[-1][0]}' (known frames: {self._describe()})")
            root = up_target[common][0]
            T_root_source = self._compose(up_source[: in_source[root]], stamp_ns)
            T_root_target = self._compose(up_target[:common], stamp_ns)
        return np.linalg.inv(T_root_target) @ T_root_source

    def can_transform(self, target: str, source: str, stamp_ns: int = 0) -> bool:
        try:
            self.lookup(target, source, stamp_ns)
            return True
        except TransformError:
            return False

    def wait_for(self, target: str, source: str, stamp_ns: int, timeout_s: float) -> np.ndarray:
        """lookup(), waiting up to timeout_s for transforms that have not arrived yet (TF often
        arrives a little after the images it belongs to)."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            try:
                return self.lookup(target, source, stamp_ns)
            except TransformError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                with self._changed:
                    self._changed.wait(min(remaining, 0.05))

    # ------------------------------------------------------------ input internals (lock held)
    def _observe_clock(self, now: int | None) -> str:
        if now is None:
            return ""
        last = self._last_now_ns
        if last is None or now >= last - int(CLOCK_BACK_TOLERANCE_S * 1e9):
            self._last_now_ns = now if last is None else max(now, last)
            return ""
        self._last_now_ns = now
        self._counts["clock_jump_back"] += 1
        frames = len(self._dynamic)
        self._dynamic.clear()
        return (f"the clock jumped back {_format_span(last - now)} (to {format_stamp(now)}): cleared the /tf "
                f"history of {frames} frame(s); static transforms kept")

    def _first(self, notice: Notice, parent: str, child: str) -> bool:
        key = (notice, parent, child)
        if key in self._reported:
            return False
        self._reported.add(key)
        return True

    def _set_static(self, parent: str, child: str, t: np.ndarray, q: np.ndarray) -> TransformUpdate:
        self._static[child] = _Edge(parent=parent, static=True, stamps=[0], translations=[t], rotations=[q])
        dynamic = self._dynamic.pop(child, None)
        if dynamic is None:
            return TransformUpdate()
        return TransformUpdate(
            Notice.STATIC_OVER_DYNAMIC,
            f"/tf_static {parent} -> {child} replaces the /tf history of '{child}' (parent '{dynamic.parent}', "
            f"{len(dynamic.stamps)} samples): a static transform wins, later /tf samples for it are ignored",
            self._first(Notice.STATIC_OVER_DYNAMIC, parent, child))

    def _set_dynamic(self, parent: str, child: str, stamp: int, t: np.ndarray, q: np.ndarray,
                     now: int | None) -> TransformUpdate:
        fixed = self._static.get(child)
        if fixed is not None:
            same = fixed.parent == parent and np.allclose(fixed.translations[0], t, atol=1e-9) and \
                abs(float(np.dot(fixed.rotations[0], q))) > 1 - 1e-12
            return TransformUpdate(
                Notice.STATIC_CONFLICT,
                f"ignoring /tf {parent} -> {child}: '{child}' has a static transform from /tf_static (parent "
                f"'{fixed.parent}'), which stays in force; this /tf sample is "
                f"{'equal to it' if same else 'different'}. Publish each frame on /tf or /tf_static, not both",
                self._first(Notice.STATIC_CONFLICT, parent, child))
        if now is not None and stamp > now + self.max_future_ns:
            return TransformUpdate(
                Notice.FUTURE,
                f"ignoring /tf {parent} -> {child} stamped {format_stamp(stamp)}, {_format_span(stamp - now)} after "
                f"this node's clock ({format_stamp(now)}; at most {_format_span(self.max_future_ns)} ahead is "
                f"accepted): is the publisher's clock, or use_sim_time, different from this node's?")
        edge = self._dynamic.get(child)
        notice, message = Notice.NONE, ""
        if edge is not None and edge.parent != parent:
            notice = Notice.REPARENTED
            message = (f"'{child}' changed parent from '{edge.parent}' to '{parent}': its /tf history restarts "
                       f"(two publishers giving it different parents make lookups fail)")
            edge = None
        if edge is None:
            edge = self._dynamic[child] = _Edge(parent=parent, static=False)
        direction = self._jump(stamp, edge.stamps[-1], now) if edge.stamps else 0
        if direction < 0 and now is not None:
            return TransformUpdate(
                Notice.PAST,
                f"ignoring /tf {parent} -> {child} stamped {format_stamp(stamp)}: {_format_span(edge.stamps[-1] - stamp)}"
                f" before the frame's newest sample ({format_stamp(edge.stamps[-1])}), more than the "
                f"{_format_span(self.cache_ns)} of history kept")
        if direction:  # only without a clock: the stamps are the only time there is
            newest_held = max((s for s, _, _ in edge.held), default=None)
            if newest_held is not None and edge.held_direction == direction and \
                    newest_held < stamp <= newest_held + self.max_future_ns:
                edge.held.append((stamp, t, q))  # moves on from the held samples: one more vote for the jump
            else:
                dropped = self._drop_held(edge, child)
                edge.held, edge.held_direction = [(stamp, t, q)], direction
                if dropped:
                    return TransformUpdate(Notice.HELD, dropped)
            if len(edge.held) < JUMP_CONFIRM:
                return TransformUpdate(Notice.HELD)
            old_newest = edge.stamps[-1]
            edge.stamps, edge.translations, edge.rotations = [], [], []
            for s, ht, hq in edge.held:
                edge.insert(s, ht, hq)
            edge.held, edge.held_direction = [], 0
            self._cut(edge, now)
            return TransformUpdate(
                Notice.JUMP,
                f"/tf {parent} -> {child} jumped {'back' if direction < 0 else 'ahead'} "
                f"{_format_span(edge.stamps[-1] - old_newest)} (newest {format_stamp(old_newest)} -> "
                f"{format_stamp(edge.stamps[-1])}) for {JUMP_CONFIRM} samples in a row: its history restarts")
        if edge.held:
            notice, message = Notice.OUTLIER_DROPPED, self._drop_held(edge, child)
        edge.insert(stamp, t, q)
        self._cut(edge, now)
        return TransformUpdate(notice, message, notice in ONCE_PER_PAIR and self._first(notice, parent, child))

    def _jump(self, stamp: int, newest: int, now: int | None) -> int:
        """-1/+1 when `stamp` jumps back/ahead of a frame's history whose newest sample is `newest`,
        else 0. With a clock, samples ahead were already bounded by it, so only those behind count."""
        if stamp < newest - self.cache_ns:
            return -1
        if now is None and stamp > newest + self.max_future_ns:
            return 1
        return 0

    def _drop_held(self, edge: _Edge, child: str) -> str:
        """Forgets the held samples, counting them as rejected; a message for the log ('' if none)."""
        if not edge.held:
            return ""
        notice = Notice.FUTURE if edge.held_direction > 0 else Notice.PAST
        self._counts[notice.value] += len(edge.held)
        stamps = [s for s, _, _ in edge.held]
        message = (f"dropped {len(stamps)} /tf sample(s) {edge.parent} -> {child} stamped {format_stamp(stamps[0])}"
                   f"{'' if len(stamps) == 1 else ' ...'}: {_format_span(abs(stamps[0] - edge.stamps[-1]))} "
                   f"{'after' if notice is Notice.FUTURE else 'before'} the frame's newest sample "
                   f"({format_stamp(edge.stamps[-1])}) and not followed by others")
        edge.held, edge.held_direction = [], 0
        return message

    def _cut(self, edge: _Edge, now: int | None) -> None:
        newest = edge.stamps[-1] if now is None else min(edge.stamps[-1], now)
        cut = bisect.bisect_left(edge.stamps, newest - self.cache_ns)
        if cut > 0:
            del edge.stamps[:cut], edge.translations[:cut], edge.rotations[:cut]

    # ------------------------------------------------------------ lookup internals (lock held)
    def _edge(self, frame: str) -> _Edge | None:
        edge = self._static.get(frame)
        return edge if edge is not None else self._dynamic.get(frame)

    def _chain(self, frame: str, other: str) -> list[tuple[str, _Edge | None]]:
        """[(frame, its edge), (parent, its edge), ..., (root, None)] going up from `frame`."""
        if self._edge(frame) is None and not any(
                e.parent == frame for e in (*self._static.values(), *self._dynamic.values())):
            raise TransformError(f"frame '{frame}' does not exist (looking up '{other}' <- '{frame}'); "
                                 f"known frames: {self._describe()}")
        chain: list[tuple[str, _Edge | None]] = []
        seen = set()
        edge = self._edge(frame)
        while edge is not None:
            if frame in seen or len(chain) > _MAX_DEPTH:
                raise TransformError(f"the transform tree has a loop through '{frame}'")
            seen.add(frame)
            chain.append((frame, edge))
            frame = edge.parent
            edge = self._edge(frame)
        chain.append((frame, None))
        return chain

    def _compose(self, chain: list[tuple[str, _Edge | None]], stamp_ns: int) -> np.ndarray:
        """Product parent_T_child along `chain` (child first) = T_top_bottom."""
        T = np.eye(4)
        for child, edge in chain:
            assert edge is not None  # only the root lacks an edge, and callers cut it off
            T = self._edge_at(child, edge, stamp_ns) @ T
        return T

    def _edge_at(self, child: str, edge: _Edge, stamp_ns: int) -> np.ndarray:
        if edge.static:
            return compose_matrix(edge.translations[0], edge.rotations[0])
        stamps = edge.stamps
        if stamp_ns == 0:
            return compose_matrix(edge.translations[-1], edge.rotations[-1])
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            return compose_matrix(edge.translations[i], edge.rotations[i])
        if i == 0 or i == len(stamps):
            when = "before the oldest" if i == 0 else "after the newest"
            raise TransformError(
                f"transform {edge.parent} -> {child} at {format_stamp(stamp_ns)} is {when} one buffered; "
                f"available: [{format_stamp(stamps[0])}, {format_stamp(stamps[-1])}] ({len(stamps)} samples)")
        t0, t1 = stamps[i - 1], stamps[i]
        a = (stamp_ns - t0) / (t1 - t0)
        translation = (1.0 - a) * edge.translations[i - 1] + a * edge.translations[i]
        rotation = quaternion_slerp(edge.rotations[i - 1], edge.rotations[i], a)
        return compose_matrix(translation, rotation)

    def _describe(self) -> str:
        edges = self._dynamic | self._static
        if not edges:
            return "none (no transforms received yet)"
        return ", ".join(f"{e.parent} -> {c}{' (static)' if e.static else ''}" for c, e in sorted(edges.items()))
