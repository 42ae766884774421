"""The time-indexed transform tree behind TF lookups: pure numpy, no rclpy.

tf2 cannot be installed from PyPI, so this is the part of it the project needs, shared by the
live mapper node (fed from /tf and /tf_static by `llm3d_ros.tf_buffer`) and the bag reader (fed
from a recorded bag's /tf and /tf_static), so a recorded frame gets the same pose offline as live.
Per child frame it keeps a bounded, time-sorted history (dynamic /tf) or one static transform
(/tf_static), and looks transforms up by chaining through the tree, interpolating translation
linearly and rotation by slerp at the requested stamp.

Convention (as tf2's lookup_transform): `lookup(target, source, t)` returns the 4x4 matrix that
maps points in `source` coordinates into `target` coordinates, i.e. the pose of `source` in
`target`. The mapper asks for lookup(map_frame, camera_optical_frame, image stamp).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from llm3d_core.messages import ConversionError, compose_matrix, normalize_quaternion, quaternion_slerp

_MAX_DEPTH = 64  # longer parent chains are treated as a loop in the published tree


class TransformError(LookupError):
    """A transform cannot be looked up; the message names the frames, the stamp and what is known."""


@dataclass
class _Edge:
    """The transform of one child frame relative to its parent: static, or a time-sorted history."""

    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)  # ns, ascending
    translations: list[np.ndarray] = field(default_factory=list)  # (3,) each
    rotations: list[np.ndarray] = field(default_factory=list)  # (4,) unit quaternions (x, y, z, w)


def format_stamp(ns: int) -> str:
    """Nanoseconds as seconds with millisecond digits, for error messages."""
    return f"{ns * 1e-9:.3f} s"


class TransformCore:
    """The transform tree over time; thread-safe; no ROS dependency beyond numpy.

    cache_s bounds each dynamic history: samples older than the newest one of that frame minus
    cache_s are dropped, so memory stays bounded under a continuous /tf stream.
    """

    def __init__(self, cache_s: float = 10.0) -> None:
        if not cache_s > 0:
            raise ValueError(f"cache_s must be > 0, got {cache_s}")
        self.cache_ns = int(cache_s * 1e9)
        self._edges: dict[str, _Edge] = {}
        self._changed = threading.Condition()

    # ------------------------------------------------------------ input
    def set_transform(self, parent: str, child: str, stamp_ns: int, translation: Iterable[float],
                      rotation: Iterable[float], static: bool = False) -> None:
        """Adds one transform (pose of `child` in `parent`); invalid input raises TransformError."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child or parent == child:
            raise TransformError(f"a transform needs two different, non-empty frame ids, got '{parent}' -> '{child}'")
        try:
            t = np.asarray(list(translation), dtype=np.float64)
            q = normalize_quaternion(list(rotation))
            compose_matrix(t, q)  # validates the translation too
        except ConversionError as err:
            raise TransformError(f"transform {parent} -> {child}: {err}") from err
        with self._changed:
            edge = self._edges.get(child)
            if edge is None or edge.static != static or edge.parent != parent:
                # A re-parented or static<->dynamic frame starts a fresh history: mixing would
                # interpolate between poses in different parents.
                edge = self._edges[child] = _Edge(parent=parent, static=static)
            if static:
                edge.stamps, edge.translations, edge.rotations = [0], [t], [q]
            else:
                i = bisect.bisect_left(edge.stamps, stamp_ns)
                if i < len(edge.stamps) and edge.stamps[i] == stamp_ns:
                    edge.translations[i], edge.rotations[i] = t, q
                else:
                    edge.stamps.insert(i, stamp_ns)
                    edge.translations.insert(i, t)
                    edge.rotations.insert(i, q)
                cut = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.cache_ns)
                if cut:
                    del edge.stamps[:cut], edge.translations[:cut], edge.rotations[:cut]
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._edges.clear()

    # ------------------------------------------------------------ queries
    def frames(self) -> dict[str, str]:
        """child -> parent of every known frame."""
        with self._changed:
            return {child: edge.parent for child, edge in self._edges.items()}

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

    # ------------------------------------------------------------ internals (lock held)
    def _chain(self, frame: str, other: str) -> list[tuple[str, _Edge | None]]:
        """[(frame, its edge), (parent, its edge), ..., (root, None)] going up from `frame`."""
        if frame not in self._edges and not any(e.parent == frame for e in self._edges.values()):
            raise TransformError(f"frame '{frame}' does not exist (looking up '{other}' <- '{frame}'); "
                                 f"known frames: {self._describe()}")
        chain: list[tuple[str, _Edge | None]] = []
        seen = set()
        while frame in self._edges:
            if frame in seen or len(chain) > _MAX_DEPTH:
                raise TransformError(f"the transform tree has a loop through '{frame}'")
            seen.add(frame)
            edge = self._edges[frame]
            chain.append((frame, edge))
            frame = edge.parent
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
        if not self._edges:
            return "none (no transforms received yet)"
        return ", ".join(f"{e.parent} -> {c}{' (static)' if e.static else ''}" for c, e in sorted(self._edges.items()))
