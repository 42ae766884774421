"""Writes posed RGB-D frames, TF and odometry into a new ROS 2 bag (mcap or sqlite3) with rosbags.

Messages are built as the nodes build them: rgb8 colour (or jpeg/png CompressedImage), 16UC1
millimetre or 32FC1 metre depth (or "16UC1; compressedDepth png"), a plumb_bob CameraInfo with
zero distortion per frame, and the camera pose on /tf at the image stamp.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from llm3d_core.bags.config import BagConfig
from llm3d_core.bags.errors import BagError
from llm3d_core.bags.source import typestore
from llm3d_core.geometry import RGBDFrame, check_rigid, depth_to_metres
from llm3d_core.messages import matrix_to_quaternion

INSTANCE_NO_HIT = 65535  # 16UC1 instance image: no surface hit (sim.io uses the same value)


class BagWriter:
    """A new bag at `path` (which must not exist). Use as a context manager; `close()` finalises it.

    Topics are added on first use. `write_frame()` writes CameraInfo, colour, depth (and instance
    ids) stamped `stamp_ns`; poses go to /tf through `write_transforms()` (several per message, as
    a TF broadcaster does) or `write_frame(..., pose_on_tf=True)` for map -> optical frame.
    """

    def __init__(self, path: str | Path, config: BagConfig | None = None) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        self.config = config or BagConfig()
        if self.path.exists():
            raise BagError(f"{self.path} exists already; bags are never overwritten (choose another --out)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.store = typestore()
        self.types = self.store.types
        plugin = StoragePlugin.MCAP if self.config.storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ generic
    def write(self, topic: str, msg: Any, t_ns: int) -> None:
        """Serializes `msg` (a rosbags message object) onto `topic` at receive time t_ns."""
        msgtype = msg.__msgtype__
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.store)
        elif conn.msgtype != msgtype:
            raise BagError(f"topic {topic} already carries {conn.msgtype}, cannot also write {msgtype}")
        self._writer.write(conn, int(t_ns), self.store.serialize_cdr(msg, msgtype))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        if stamp_ns <= 0:
            raise BagError(f"stamps must be > 0 (time 0 means 'latest' to TF), got {stamp_ns}")
        t = self.types
        return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000),
                                                                              nanosec=int(stamp_ns % 1_000_000_000)),
                                        frame_id=frame_id)

    # ------------------------------------------------------------------ messages
    def image(self, array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
        """(H, W[, C]) array already in `encoding`'s channel order -> sensor_msgs/Image (little-endian)."""
        array = np.ascontiguousarray(array)
        h, w = array.shape[:2]
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).reshape(h, -1).view(np.uint8)  # (H, W * bytes)
        return self.types["sensor_msgs/msg/Image"](header=self.header(stamp_ns, frame_id), height=h, width=w,
                                                   encoding=encoding, is_bigendian=0, step=int(data.shape[1]),
                                                   data=np.ascontiguousarray(data).reshape(-1))

    def compressed(self, payload: bytes, fmt: str, stamp_ns: int, frame_id: str) -> Any:
        return self.types["sensor_msgs/msg/CompressedImage"](header=self.header(stamp_ns, frame_id), format=fmt,
                                                             data=np.frombuffer(payload, np.uint8).copy())

    def camera_info(self, K: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str) -> Any:
        """An undistorted pinhole camera: plumb_bob with zero distortion, R = I, P = [K | 0]."""
        K = np.asarray(K, np.float64)
        P = np.hstack([K, np.zeros((3, 1))])  # (3, 4)
        t = self.types
        return t["sensor_msgs/msg/CameraInfo"](
            header=self.header(stamp_ns, frame_id), height=int(height), width=int(width), distortion_model="plumb_bob",
            d=np.zeros(5), k=K.ravel(), r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0,
            roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))

    def transform(self, T: np.ndarray, parent: str, child: str, stamp_ns: int) -> Any:
        """(4, 4) pose of `child` in `parent` -> geometry_msgs/TransformStamped."""
        T = check_rigid(T, f"transform {parent} -> {child}")
        q = matrix_to_quaternion(T[:3, :3])
        t = self.types
        return t["geometry_msgs/msg/TransformStamped"](
            header=self.header(stamp_ns, parent), child_frame_id=child,
            transform=t["geometry_msgs/msg/Transform"](
                translation=t["geometry_msgs/msg/Vector3"](x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                rotation=t["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))))

    # ------------------------------------------------------------------ streams
    def write_transforms(self, transforms: list[tuple[np.ndarray, str, str]], stamp_ns: int, static: bool = False,
                         t_ns: int | None = None) -> None:
        """[(T_parent_child, parent, child), ...] as one TFMessage on /tf (or /tf_static)."""
        msg = self.types["tf2_msgs/msg/TFMessage"](
            transforms=[self.transform(T, parent, child, stamp_ns) for T, parent, child in transforms])
        self.write(self.config.tf_static_topic if static else self.config.tf_topic, msg,
                   stamp_ns if t_ns is None else t_ns)

    def write_odometry(self, T_odom_base: np.ndarray, linear_x: float, angular_z: float, stamp_ns: int) -> None:
        cfg, t = self.config, self.types
        tf = self.transform(T_odom_base, cfg.odom_frame, cfg.base_frame, stamp_ns).transform
        zeros = np.zeros(36)  # covariances: exact simulated odometry has no estimate to report
        msg = t["nav_msgs/msg/Odometry"](
            header=self.header(stamp_ns, cfg.odom_frame), child_frame_id=cfg.base_frame,
            pose=t["geometry_msgs/msg/PoseWithCovariance"](
                pose=t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](
                    x=tf.translation.x, y=tf.translation.y, z=tf.translation.z), orientation=tf.rotation),
                covariance=zeros),
            twist=t["geometry_msgs/msg/TwistWithCovariance"](
                twist=t["geometry_msgs/msg/Twist"](linear=t["geometry_msgs/msg/Vector3"](x=float(linear_x), y=0.0, z=0.0),
                                                   angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=float(angular_z))),
                covariance=zeros.copy()))
        self.write(cfg.odom_topic, msg, stamp_ns)

    def write_frame(self, frame: RGBDFrame, stamp_ns: int, pose_on_tf: bool = True, t_ns: int | None = None,
                    color_payload: bytes | None = None) -> None:
        """CameraInfo, colour, depth (and instance ids) of `frame` stamped stamp_ns, received at t_ns.

        pose_on_tf writes frame.T_world_camera as map -> optical frame on /tf first (a TF source
        publishes poses before or with the images). color_payload passes already-compressed
        colour bytes through untouched (e.g. a dataset's JPEG files) when color_format is jpeg/png.
        """
        cfg = self.config
        t_ns = stamp_ns if t_ns is None else t_ns
        frame_id = cfg.optical_frame
        if pose_on_tf:
            self.write_transforms([(frame.T_world_camera, cfg.map_frame, frame_id)], stamp_ns, t_ns=t_ns)
        h, w = frame.rgb.shape[:2]
        self.write(cfg.camera_info_topic, self.camera_info(frame.K, w, h, stamp_ns, frame_id), t_ns)
        if cfg.instance_topic and frame.instance_ids is not None:
            # Before colour and depth: a reader attaches it when their pair forms, even with tf_timeout_s 0.
            ids = np.where(frame.instance_ids < 0, INSTANCE_NO_HIT, frame.instance_ids).astype(np.uint16)
            self.write(cfg.instance_topic, self.image(ids, "16UC1", stamp_ns, frame_id), t_ns)
        self.write(cfg.color_topic, self._color_msg(frame.rgb, stamp_ns, color_payload), t_ns)
        self.write(cfg.depth_topic, self._depth_msg(frame, stamp_ns), t_ns)

    def _color_msg(self, rgb: np.ndarray, stamp_ns: int, payload: bytes | None) -> Any:
        cfg = self.config
        if cfg.color_format == "raw":
            return self.image(rgb, "rgb8", stamp_ns, cfg.optical_frame)
        if payload is None:
            from PIL import Image as PILImage

            buf = io.BytesIO()
            options = {"quality": cfg.jpeg_quality} if cfg.color_format == "jpeg" else {}
            PILImage.fromarray(rgb).save(buf, format=cfg.color_format.upper(), **options)
            payload = buf.getvalue()
        # image_transport's format string: source encoding; codec and what it holds
        return self.compressed(payload, f"rgb8; {cfg.color_format} compressed rgb8", stamp_ns, cfg.optical_frame)

    def _depth_msg(self, frame: RGBDFrame, stamp_ns: int) -> Any:
        cfg = self.config
        depth = frame.depth
        if cfg.depth_format == "32FC1":
            return self.image(depth_to_metres(depth, frame.depth_scale), "32FC1", stamp_ns, cfg.optical_frame)
        units = _depth_units(depth, frame.depth_scale, cfg.depth_scale)
        if cfg.depth_format == "16UC1":
            return self.image(units, "16UC1", stamp_ns, cfg.optical_frame)
        from PIL import Image as PILImage

        buf = io.BytesIO()
        PILImage.fromarray(units).save(buf, format="PNG")
        # compressed_depth_image_transport layout: 12-byte config header (format 1 = no quantisation) + PNG
        header = np.array([1], "<i4").tobytes() + np.zeros(2, "<f4").tobytes()
        return self.compressed(header + buf.getvalue(), "16UC1; compressedDepth png", stamp_ns, cfg.optical_frame)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _depth_units(depth: np.ndarray, frame_scale: float, bag_scale: float) -> np.ndarray:
    """uint16 depth in units of 1/bag_scale m; 0 = invalid. uint16 input at the same scale passes unchanged."""
    if depth.dtype == np.uint16 and frame_scale == bag_scale:
        return np.where(depth == np.iinfo(np.uint16).max, 0, depth).astype(np.uint16)
    units = np.rint(depth_to_metres(depth, frame_scale).astype(np.float64) * bag_scale)  # (H, W)
    return np.where((units > 0) & (units < np.iinfo(np.uint16).max), units, 0).astype(np.uint16)
