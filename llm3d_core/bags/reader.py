"""Posed RGB-D frames out of a recorded bag, paired and posed exactly as the live mapper node does.

The mapper node (llm3d_ros.nodes.mapper_node) pairs colour and depth by stamp with
`StampPairer(sync_tolerance_s, buffer 10)`, takes the newest valid CameraInfo, the camera frame
from `camera_frame` or the colour header, and the pose from TF (`TransformCore.lookup(map_frame,
camera frame, colour stamp)`) after waiting up to `tf_timeout_s` for late transforms. Here the
same classes run over the bag's messages in receive order, and "waiting" is measured on the
bag's receive clock: a pair is posed once messages `tf_timeout_s` younger than it have been read
(or at the end of the bag). Unlike the node, nothing is dropped for being stale: offline there is
time to fuse every pair.

What cannot be used is counted by the node's error kinds (no_camera_info, no_frame_id,
no_transform, bad_image, bad_camera_info, bad_transform) in `BagReport`. Errors name what is
missing: absent topics raise `BagTopicError` before reading; a bag whose frames get no pose at
all raises `BagTransformError`; a damaged file raises `BagCorruptError` after every frame before
the damage was yielded.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llm3d_core.bags.config import BagConfig
from llm3d_core.bags.errors import BagCorruptError, BagTopicError, BagTransformError
from llm3d_core.bags.source import BagSource, normalize_topic
from llm3d_core.bags.writer import INSTANCE_NO_HIT
from llm3d_core.geometry import RGBDFrame
from llm3d_core.messages import ConversionError, camera_info_to_K, rgbd_frame_from_messages, stamp_to_ns
from llm3d_core.sync import StampPairer
from llm3d_core.tf_tree import TransformCore, TransformError

log = logging.getLogger(__name__)

PAIR_BUFFER = 10  # unmatched colour/depth frames kept per stream: the mapper node's PAIR_BUFFER
SKIP_KINDS = ("no_camera_info", "bad_camera_info", "no_frame_id", "no_transform", "bad_image", "bad_transform")
_INSTANCE_KEEP = 64  # instance images kept while their colour/depth pair forms


@dataclass
class BagReport:
    """What reading a bag did: messages per topic, frames made, and every skipped item by reason."""

    path: str
    storage: str
    messages: dict[str, int] = field(default_factory=dict)  # read per topic
    frames: int = 0
    pairs: int = 0
    unpaired: int = 0  # colour or depth messages that never found a partner
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_KINDS, 0))
    first_error: dict[str, str] = field(default_factory=dict)  # kind -> the first message of that kind
    damage: str | None = None  # where a truncated or damaged file stopped reading
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        import dataclasses

        return dataclasses.asdict(self)


class BagFrameReader:
    """Reads one bag; `frames()` streams RGBDFrames (float32 metre depth, pose from TF)."""

    def __init__(self, path: str | Path, config: BagConfig | None = None) -> None:
        self.config = config or BagConfig()
        self.source = BagSource(path)
        self.report = BagReport(str(path), self.source.storage)
        cfg = self.config
        self._topic_kind = {normalize_topic(cfg.color_topic): "color", normalize_topic(cfg.depth_topic): "depth",
                            normalize_topic(cfg.camera_info_topic): "camera_info", normalize_topic(cfg.tf_topic): "tf",
                            normalize_topic(cfg.tf_static_topic): "tf_static"}
        if cfg.instance_topic:
            self._topic_kind[normalize_topic(cfg.instance_topic)] = "instance"
        self._check_topics()

    def _check_topics(self) -> None:
        """Missing camera topics or TF: nothing can be read, so say exactly what is missing, up front."""
        topics, cfg = self.source.topics, self.config
        missing = [f"{topic} ({name})" for name, topic in cfg.required_topics.items()
                   if not topics.get(normalize_topic(topic)) or topics[normalize_topic(topic)].count == 0]
        damaged = f"; the file is damaged ({self.source.damage})" if self.source.damage else ""
        if missing:
            raise BagTopicError(f"bag {self.source.path} has no messages on {', '.join(missing)}; its topics: "
                                f"{self.source.describe_topics()}{damaged}. Set the topic names in the "
                                "`llm3d_bag: bag:` section of the config if they differ.", self.report)
        tf_topics = [normalize_topic(cfg.tf_topic), normalize_topic(cfg.tf_static_topic)]
        if not any(topics.get(t) and topics[t].count for t in tf_topics) and not cfg.camera_frame == cfg.map_frame:
            raise BagTransformError(f"bag {self.source.path} has no messages on {' or '.join(tf_topics)}: camera poses "
                                    f"({cfg.map_frame} <- camera frame) cannot be looked up; its topics: "
                                    f"{self.source.describe_topics()}{damaged}", self.report)

    def frames(self) -> Iterator[RGBDFrame]:
        """Posed frames in stamp order of completion. Raises at the end (after yielding what could be
        read) when the file is damaged or no frame could be posed; other skips are only counted."""
        cfg, report = self.config, self.report
        t0 = time.perf_counter()
        pairer: StampPairer[Any, Any] = StampPairer(int(round(cfg.sync_tolerance_s * 1e9)), PAIR_BUFFER)
        tf = TransformCore(cfg.tf_cache_s)
        timeout_ns = int(round(cfg.tf_timeout_s * 1e9))
        pending: deque[tuple[int, tuple[int, Any, Any]]] = deque()  # (receive ns, pair) awaiting late TF
        instances: OrderedDict[int, Any] = OrderedDict()
        state: dict[str, Any] = {"info": None}
        for topic, msgtype, t_ns, raw in self.source.messages(set(self._topic_kind)):
            kind = self._topic_kind[topic]
            report.messages[topic] = report.messages.get(topic, 0) + 1
            try:
                msg = self.source.deserialize(raw, msgtype)
            except Exception as err:  # a damaged payload is one bad message, not a bad bag
                self._skip("bad_image" if kind in ("color", "depth", "instance") else
                           "bad_transform" if kind.startswith("tf") else "bad_camera_info",
                           f"{topic} message at {t_ns * 1e-9:.3f} s does not deserialize as {msgtype}: {err}")
                continue
            if kind in ("tf", "tf_static"):
                self._add_transforms(tf, msg, kind == "tf_static", topic)
            elif kind == "camera_info":
                try:
                    camera_info_to_K(msg)
                    state["info"] = msg
                except ConversionError as err:
                    self._skip("bad_camera_info", f"ignoring CameraInfo on {topic}: {err}")
            elif kind == "instance":
                instances[stamp_to_ns(msg.header.stamp)] = msg
                while len(instances) > _INSTANCE_KEEP:
                    instances.popitem(last=False)
            else:
                stamp = stamp_to_ns(msg.header.stamp)
                pair = pairer.add_first(stamp, msg) if kind == "color" else pairer.add_second(stamp, msg)
                if pair is not None:
                    report.pairs += 1
                    pending.append((t_ns, pair))
            while pending and t_ns - pending[0][0] >= timeout_ns:
                frame = self._resolve(pending.popleft()[1], tf, state["info"], instances)
                if frame is not None:
                    yield frame
        while pending:
            frame = self._resolve(pending.popleft()[1], tf, state["info"], instances)
            if frame is not None:
                yield frame
        report.unpaired = pairer.unpaired + pairer.waiting()  # still waiting at the end: never paired either
        report.damage = self.source.damage
        report.seconds = round(time.perf_counter() - t0, 3)
        self._finish()

    # ------------------------------------------------------------------ internals
    def _add_transforms(self, tf: TransformCore, msg: Any, static: bool, topic: str) -> None:
        for t in msg.transforms:
            tr, r = t.transform.translation, t.transform.rotation
            try:
                tf.set_transform(t.header.frame_id, t.child_frame_id, stamp_to_ns(t.header.stamp),
                                 (tr.x, tr.y, tr.z), (r.x, r.y, r.z, r.w), static=static)
            except TransformError as err:
                self._skip("bad_transform", f"ignoring a transform on {topic}: {err}")

    def _resolve(self, pair: tuple[int, Any, Any], tf: TransformCore, info: Any,
                 instances: OrderedDict[int, Any]) -> RGBDFrame | None:
        """The node's _fuse() up to integrate(): CameraInfo, frame id, TF pose, conversion."""
        stamp_ns, color, depth = pair
        cfg = self.config
        if info is None:
            self._skip("no_camera_info", f"no valid CameraInfo on {cfg.camera_info_topic} before the frame at "
                                         f"{stamp_ns * 1e-9:.3f} s")
            return None
        frame_id = cfg.camera_frame or color.header.frame_id
        if not frame_id:
            self._skip("no_frame_id", "colour image has no header.frame_id and camera_frame is not set")
            return None
        try:
            pose = tf.lookup(cfg.map_frame, frame_id, stamp_ns)
        except TransformError as err:
            self._skip("no_transform", f"no pose {cfg.map_frame} <- {frame_id} for the frame at "
                                       f"{stamp_ns * 1e-9:.3f} s: {err}")
            return None
        try:
            frame = rgbd_frame_from_messages(color, depth, info, pose, cfg.depth_scale)
            ids = instances.get(stamp_ns)
            if ids is not None:
                frame.instance_ids = instance_ids_from_image(ids)
        except (ConversionError, ValueError) as err:
            self._skip("bad_image", f"frame at {stamp_ns * 1e-9:.3f} s skipped: {err}")
            return None
        self.report.frames += 1
        return frame

    def _skip(self, kind: str, message: str) -> None:
        self.report.skipped[kind] += 1
        if kind not in self.report.first_error:
            self.report.first_error[kind] = message
            log.warning("%s [%s]", message, kind)

    def _finish(self) -> None:
        report, cfg = self.report, self.config
        read = f"{report.frames} frame(s) were read before it" if report.frames else "no frame could be read"
        if report.damage:
            raise BagCorruptError(f"bag {report.path} is truncated or damaged: {report.damage}; {read} "
                                  f"({sum(report.messages.values())} messages)", report)
        if report.frames == 0 and report.skipped["no_transform"]:
            raise BagTransformError(f"bag {report.path}: none of its {report.pairs} colour/depth pairs has a camera "
                                    f"pose: {report.first_error['no_transform']}", report)
        if report.frames == 0:
            why = "; ".join(f"{k}: {v}" for k, v in report.first_error.items()) or (
                f"colour and depth stamps never agree within sync_tolerance_s={cfg.sync_tolerance_s}")
            raise BagTopicError(f"bag {report.path}: no posed frame could be made ({why})", report)
        if report.skipped["no_transform"]:
            log.warning("bag %s: %d of %d frames had no pose and were skipped (first: %s)", report.path,
                        report.skipped["no_transform"], report.pairs, report.first_error["no_transform"])

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> BagFrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def instance_ids_from_image(msg: Any) -> np.ndarray:
    """16UC1 instance Image -> (H, W) int32 ids, -1 where nothing was hit (65535 in the image)."""
    if msg.encoding not in ("16UC1", "mono16"):
        raise ConversionError(f"instance image must be 16UC1, got '{msg.encoding}'")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, np.uint8)
    if step < 2 * w or data.size != h * step:
        raise ConversionError(f"instance image data has {data.size} bytes for {w}x{h}, step {step}")
    rows = data.reshape(h, step)[:, : 2 * w]  # (H, 2W) bytes, row padding cut
    ids = np.ascontiguousarray(rows).view(">u2" if msg.is_bigendian else "<u2").astype(np.int32)  # (H, W)
    ids[ids == INSTANCE_NO_HIT] = -1
    return ids


def read_frames(path: str | Path, config: BagConfig | None = None) -> Iterator[RGBDFrame]:
    """Convenience: the frames of one bag (see BagFrameReader.frames)."""
    with BagFrameReader(path, config) as reader:
        yield from reader.frames()
