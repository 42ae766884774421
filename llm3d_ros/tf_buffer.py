"""A small TF buffer: /tf and /tf_static in, interpolated frame-to-frame transforms out.

tf2_ros cannot be installed from PyPI, so this module provides the part of it the nodes need:
- `TransformCore` (in `llm3d_core.tf_tree`, shared with the bag reader): the time-indexed
  transform tree, pure numpy, no rclpy (unit-tested alone).
- `TfListenerBuffer`: subscribes /tf and /tf_static (transient local, so static transforms sent
  before this node started still arrive) and feeds a `TransformCore` with the node clock's time,
  so /tf samples stamped far ahead of it are rejected, and a clock jumping back clears the
  history. It logs what the core rejects or overrides (a /tf sample for a static frame once per
  frame pair, time problems at most every LOG_PERIOD_S per kind) and counts it (`counters()`).
- `make_tf_buffer(node)`: tf2_ros's Buffer + TransformListener where tf2_ros is importable (a
  full ROS 2 install), else `TfListenerBuffer`; both expose `lookup_matrix()`.

Convention (as tf2's lookup_transform): `lookup(target, source, t)` returns the 4x4 matrix that
maps points in `source` coordinates into `target` coordinates, i.e. the pose of `source` in
`target`. The mapper asks for lookup(map_frame, camera_optical_frame, image stamp).
"""

from __future__ import annotations

import time

import numpy as np

from llm3d_core.tf_tree import ONCE_PER_PAIR, Notice, TransformCore, TransformError, TransformUpdate, format_stamp
from llm3d_ros.conversions import ConversionError, stamp_to_ns, transform_to_matrix


LOG_PERIOD_S = 5.0  # at most one log line per kind of time problem in this period


class TfListenerBuffer:
    """Feeds a TransformCore from /tf and /tf_static; `lookup_matrix()` is what nodes call."""

    def __init__(self, node, cache_s: float = 10.0, max_future_s: float = 5.0) -> None:
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
        from tf2_msgs.msg import TFMessage

        from llm3d_ros.qos import latched_qos, reliable_qos

        self.core = TransformCore(cache_s, max_future_s)
        self._node = node
        self.malformed = 0  # transforms that cannot be used at all (bad frame ids, NaN, zero quaternion)
        self._last_logged: dict[Notice, float] = {}
        # Own callback group: TF keeps flowing while image callbacks or services run.
        group = MutuallyExclusiveCallbackGroup()
        dynamic_qos = reliable_qos(100)
        # Static transforms are published once, latched: transient local delivers them late joiners.
        static_qos = latched_qos(100)
        node.create_subscription(TFMessage, "/tf", lambda m: self._on_tf(m, False), dynamic_qos, callback_group=group)
        node.create_subscription(TFMessage, "/tf_static", lambda m: self._on_tf(m, True), static_qos,
                                 callback_group=group)

    @property
    def rejected(self) -> int:
        """Transforms received but not used: malformed, /tf for a static frame, too far ahead or behind."""
        counts = self.core.counts()
        return self.malformed + counts["static_conflict"] + counts["future"] + counts["past"]

    def counters(self) -> dict[str, int]:
        """For a node's status: malformed, every TransformCore notice count, and their rejected total."""
        return {"malformed": self.malformed, **self.core.counts(), "rejected": self.rejected}

    def _on_tf(self, msg, static: bool) -> None:
        now_ns = self._node.get_clock().now().nanoseconds  # 0 under sim time before /clock: no clock
        logger = self._node.get_logger()
        jumped = self.core.observe_clock(now_ns)
        if jumped:
            logger.warning(jumped)
        for tf in msg.transforms:
            t, r = tf.transform.translation, tf.transform.rotation
            try:
                update = self.core.set_transform(tf.header.frame_id, tf.child_frame_id, stamp_to_ns(tf.header.stamp),
                                                 (t.x, t.y, t.z), (r.x, r.y, r.z, r.w), static=static, now_ns=now_ns)
            except TransformError as err:
                self.malformed += 1
                logger.warning(f"ignoring a transform from {'/tf_static' if static else '/tf'}: {err}",
                               throttle_duration_sec=LOG_PERIOD_S)
                continue
            if update.message:
                self._log(update, logger)

    def _log(self, update: TransformUpdate, logger) -> None:
        if update.notice in ONCE_PER_PAIR:
            if update.first:  # a configuration problem: once per frame pair says it all
                logger.warning(update.message)
            return
        now = time.monotonic()
        if now - self._last_logged.get(update.notice, -LOG_PERIOD_S) >= LOG_PERIOD_S:
            self._last_logged[update.notice] = now
            counts = self.core.counts()
            logger.warning(f"{update.message} (so far: {counts['future']} too far ahead, {counts['past']} too old, "
                           f"{counts['jump']} stream jumps)")

    def lookup_matrix(self, target: str, source: str, stamp_ns: int, timeout_s: float = 0.0) -> np.ndarray:
        """Pose of `source` in `target` at stamp_ns (0: latest) as 4x4; raises TransformError."""
        return self.core.wait_for(target, source, stamp_ns, timeout_s)


class Tf2RosBuffer:
    """tf2_ros.Buffer + TransformListener behind the same `lookup_matrix()` (full ROS 2 installs)."""

    def __init__(self, node, cache_s: float = 10.0) -> None:
        import tf2_ros
        from rclpy.duration import Duration

        self._tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer(cache_time=Duration(seconds=cache_s), node=node)
        self.listener = tf2_ros.TransformListener(self.buffer, node, spin_thread=False)

    def counters(self) -> dict[str, int]:
        """tf2 keeps no counters this buffer could read."""
        return {}

    def lookup_matrix(self, target: str, source: str, stamp_ns: int, timeout_s: float = 0.0) -> np.ndarray:
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            tf = self.buffer.lookup_transform(target, source, Time(nanoseconds=stamp_ns),
                                              timeout=Duration(nanoseconds=int(timeout_s * 1e9)))
        except (self._tf2.LookupException, self._tf2.ConnectivityException, self._tf2.ExtrapolationException,
                self._tf2.InvalidArgumentException) as err:
            raise TransformError(f"tf2: {target} <- {source} at {format_stamp(stamp_ns)}: {err}") from err
        try:
            return transform_to_matrix(tf)
        except ConversionError as err:
            raise TransformError(f"tf2 returned an invalid transform {target} <- {source}: {err}") from err


def make_tf_buffer(node, cache_s: float = 10.0, max_future_s: float = 5.0) -> TfListenerBuffer | Tf2RosBuffer:
    """tf2_ros where it is importable (max_future_s then unused), else this module's own listener buffer."""
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return TfListenerBuffer(node, cache_s, max_future_s)
    return Tf2RosBuffer(node, cache_s)
