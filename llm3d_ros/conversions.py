"""Message <-> numpy conversions for the llm3d nodes: the one place that knows message layouts.

Nothing here needs a running graph or an initialised rclpy: tests build messages in memory.
Conventions follow ROS REP 103/105 and `llm3d_core.geometry`: OpenCV optical camera frames,
4x4 homogeneous transforms that map child-frame coordinates into the parent frame, quaternions
stored (x, y, z, w) as in geometry_msgs.

Image payloads arrive as `array.array`; `np.frombuffer` reads them without a copy, and a strided
view honours `step` (row padding) so padded images are never copied twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Transform, TransformStamped
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from llm3d_core.geometry import RGBDFrame


class ConversionError(ValueError):
    """A message cannot be converted; the message says which field and value are wrong."""


# encoding -> (channels, channel order that yields RGB); mono8 repeats its one channel.
COLOR_ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
DEPTH_ENCODINGS: dict[str, np.dtype] = {
    "16UC1": np.dtype(np.uint16),
    "mono16": np.dtype(np.uint16),
    "32FC1": np.dtype(np.float32),
}
# What numpy_to_image accepts: encoding -> (dtype, channels).
_ENCODING_LAYOUT: dict[str, tuple[np.dtype, int]] = {
    **{name: (np.dtype(np.uint8), ch) for name, (ch, _) in COLOR_ENCODINGS.items()},
    **{name: (dtype, 1) for name, dtype in DEPTH_ENCODINGS.items()},
}


# ---------------------------------------------------------------------------- stamps
def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (exact, unlike float seconds)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    if ns < 0:
        raise ConversionError(f"a ROS time stamp cannot be negative, got {ns} ns")
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


# ---------------------------------------------------------------------------- images
def _image_view(msg: Image, dtype: np.dtype, channels: int) -> np.ndarray:
    """(H, W, C) view of an Image's payload with `dtype` elements, honouring step and endianness."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        raise ConversionError(f"image '{msg.encoding}' has zero size ({w}x{h})")
    pixel_bytes = dtype.itemsize * channels
    if step < w * pixel_bytes:
        raise ConversionError(f"image step {step} is smaller than width {w} x {pixel_bytes} bytes per pixel "
                              f"for encoding '{msg.encoding}'")
    data = np.frombuffer(msg.data, dtype=np.uint8)  # zero-copy over array.array / bytes
    if data.size != h * step:
        raise ConversionError(f"image data has {data.size} bytes, but height {h} x step {step} = {h * step} "
                              f"(encoding '{msg.encoding}', {w}x{h})")
    order = ">" if msg.is_bigendian else "<"
    view = np.ndarray(shape=(h, w, channels), dtype=dtype.newbyteorder(order), buffer=data,
                      strides=(step, pixel_bytes, dtype.itemsize))
    return view


def image_to_rgb(msg: Image) -> np.ndarray:
    """Colour Image (rgb8, bgr8, rgba8, bgra8, mono8) -> (H, W, 3) uint8 RGB, C-contiguous copy."""
    layout = COLOR_ENCODINGS.get(msg.encoding)
    if layout is None:
        raise ConversionError(f"unsupported colour encoding '{msg.encoding}'; expected one of "
                              f"{', '.join(COLOR_ENCODINGS)}")
    channels, order = layout
    view = _image_view(msg, np.dtype(np.uint8), channels)
    return np.ascontiguousarray(view[:, :, list(order)])  # (H, W, 3); drops alpha, reorders BGR


def image_to_depth_m(msg: Image, depth_scale: float = 1000.0) -> np.ndarray:
    """Depth Image -> (H, W) float32 metres; invalid pixels (0, 65535, NaN, inf, < 0) become 0.

    16UC1 / mono16 hold integer units of 1/depth_scale metres (1000: millimetres, the
    OpenNI/RealSense convention); 32FC1 holds metres (REP 118).
    """
    dtype = DEPTH_ENCODINGS.get(msg.encoding)
    if dtype is None:
        raise ConversionError(f"unsupported depth encoding '{msg.encoding}'; expected one of "
                              f"{', '.join(DEPTH_ENCODINGS)}")
    raw = _image_view(msg, dtype, 1)[:, :, 0]  # (H, W)
    if dtype == np.uint16:
        if not (np.isfinite(depth_scale) and depth_scale > 0):
            raise ConversionError(f"depth_scale must be a finite number > 0, got {depth_scale}")
        metres = raw.astype(np.float32) / np.float32(depth_scale)
        metres[raw == np.iinfo(np.uint16).max] = 0.0  # 65535 marks "no return" on common sensors
        return metres
    metres = raw.astype(np.float32)  # native byte order, contiguous copy
    metres[~np.isfinite(metres) | (metres < 0)] = 0.0
    return metres


def numpy_to_image(array: np.ndarray, encoding: str, frame_id: str = "", stamp: Time | None = None,
                   row_padding: int = 0, bigendian: bool = False) -> Image:
    """(H, W[, C]) array -> Image. The array is already in the encoding's channel order.

    row_padding adds bytes at the end of each row (step > width * pixel size), and bigendian
    writes multi-byte pixels big-endian: both exist in the wild, so tests exercise them.
    """
    layout = _ENCODING_LAYOUT.get(encoding)
    if layout is None:
        raise ConversionError(f"unsupported encoding '{encoding}'; expected one of {', '.join(_ENCODING_LAYOUT)}")
    dtype, channels = layout
    array = np.asarray(array)
    expected_ndim = 2 if channels == 1 else 3
    if array.ndim == 3 and channels == 1 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels):
        raise ConversionError(f"encoding '{encoding}' needs an array of {channels} channel(s), got shape {array.shape}")
    if array.dtype != dtype:
        raise ConversionError(f"encoding '{encoding}' needs dtype {dtype}, got {array.dtype}")
    if row_padding < 0:
        raise ConversionError(f"row_padding must be >= 0, got {row_padding}")
    h, w = array.shape[:2]
    rows = np.ascontiguousarray(array, dtype=dtype.newbyteorder(">" if bigendian else "<")).reshape(h, -1)
    rows = rows.view(np.uint8)  # (H, W * pixel bytes)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((h, row_padding), np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=int(rows.shape[1]))
    msg.header = Header(frame_id=frame_id, stamp=stamp or Time())
    msg.data = rows.tobytes()
    return msg


def camera_info_to_K(msg: CameraInfo) -> np.ndarray:
    """CameraInfo -> (3, 3) float64 intrinsics, rejecting unset or non-finite calibrations."""
    k = np.asarray(msg.k, dtype=np.float64)
    if k.shape != (9,):
        raise ConversionError(f"CameraInfo.k must have 9 entries, got {k.size}")
    if not np.all(np.isfinite(k)):
        raise ConversionError(f"CameraInfo.k has non-finite entries: {k.tolist()}")
    K = k.reshape(3, 3)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ConversionError(f"CameraInfo.k needs fx, fy > 0 (an uncalibrated camera sends zeros), "
                              f"got fx={K[0, 0]}, fy={K[1, 1]}")
    return K


def rgbd_frame_from_messages(color: Image, depth: Image, info: CameraInfo, T_world_camera: np.ndarray,
                             depth_scale: float = 1000.0) -> RGBDFrame:
    """A posed RGBDFrame from a colour/depth pair, its CameraInfo and the camera pose (4x4)."""
    rgb = image_to_rgb(color)
    depth_m = image_to_depth_m(depth, depth_scale)
    if rgb.shape[:2] != depth_m.shape:
        raise ConversionError(f"colour {rgb.shape[1]}x{rgb.shape[0]} and depth {depth_m.shape[1]}x{depth_m.shape[0]} "
                              "sizes differ (the mapper needs registered, equal-size images)")
    if info.width and info.height and (info.width, info.height) != (rgb.shape[1], rgb.shape[0]):
        raise ConversionError(f"CameraInfo is for {info.width}x{info.height} but the images are "
                              f"{rgb.shape[1]}x{rgb.shape[0]}")
    return RGBDFrame(rgb=rgb, depth=depth_m, K=camera_info_to_K(info), T_world_camera=T_world_camera,
                     timestamp=stamp_to_ns(color.header.stamp) * 1e-9)


# ---------------------------------------------------------------------------- quaternions and transforms
def normalize_quaternion(q: Sequence[float]) -> np.ndarray:
    """(x, y, z, w) -> unit quaternion; non-finite or zero-length input raises ConversionError."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (4,) or not np.all(np.isfinite(q)):
        raise ConversionError(f"quaternion must be 4 finite numbers (x, y, z, w), got {q.tolist()}")
    norm = float(np.linalg.norm(q))
    if norm < 1e-9:
        raise ConversionError(f"quaternion has zero length: {q.tolist()}")
    return q / norm


def quaternion_to_matrix(q: Sequence[float]) -> np.ndarray:
    """Unit quaternion (x, y, z, w) -> (3, 3) rotation matrix."""
    x, y, z, w = normalize_quaternion(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> unit quaternion (x, y, z, w) with w >= 0.

    Branches on the largest diagonal term (Shepperd's method) so the square root never runs
    on a value near zero, which loses precision for rotations near 180 degrees.
    """
    R = np.asarray(R, dtype=np.float64)
    trace = R[0, 0] + R[1, 1] + R[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    q = normalize_quaternion(q)
    return -q if q[3] < 0 else q


def quaternion_slerp(q0: Sequence[float], q1: Sequence[float], fraction: float) -> np.ndarray:
    """Spherical linear interpolation between unit quaternions, along the shorter arc."""
    q0, q1 = normalize_quaternion(q0), normalize_quaternion(q1)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:  # q and -q are the same rotation; take the short way round
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly parallel: the sin() ratio is ill-conditioned, lerp is exact enough
        return normalize_quaternion(q0 + fraction * (q1 - q0))
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    s = np.sin(theta)
    return (np.sin((1.0 - fraction) * theta) / s) * q0 + (np.sin(fraction * theta) / s) * q1


def compose_matrix(translation: Sequence[float], quaternion: Sequence[float]) -> np.ndarray:
    """Translation (3,) + quaternion (x, y, z, w) -> (4, 4) homogeneous transform."""
    t = np.asarray(translation, dtype=np.float64)
    if t.shape != (3,) or not np.all(np.isfinite(t)):
        raise ConversionError(f"translation must be 3 finite numbers, got {t.tolist()}")
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(quaternion)
    T[:3, 3] = t
    return T


def transform_to_matrix(msg: Transform | TransformStamped) -> np.ndarray:
    """geometry_msgs Transform(Stamped) -> (4, 4): maps child-frame points into the parent frame."""
    tf = msg.transform if isinstance(msg, TransformStamped) else msg
    t, r = tf.translation, tf.rotation
    return compose_matrix((t.x, t.y, t.z), (r.x, r.y, r.z, r.w))


def matrix_to_transform(T: np.ndarray) -> Transform:
    """(4, 4) rigid transform -> geometry_msgs/Transform; non-finite or non-rigid input raises."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ConversionError(f"transform must be a finite 4x4 matrix, got shape {T.shape}")
    R = T[:3, :3]
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or abs(np.linalg.det(R) - 1.0) > 1e-3:
        raise ConversionError(f"transform rotation is not orthonormal with det +1 (det={np.linalg.det(R):.4f})")
    msg = Transform()
    msg.translation.x, msg.translation.y, msg.translation.z = (float(v) for v in T[:3, 3])
    q = matrix_to_quaternion(R)
    msg.rotation.x, msg.rotation.y, msg.rotation.z, msg.rotation.w = (float(v) for v in q)
    return msg


def matrix_to_transform_stamped(T: np.ndarray, parent_frame: str, child_frame: str, stamp: Time | None = None
                                ) -> TransformStamped:
    """(4, 4) pose of `child_frame` in `parent_frame` -> TransformStamped (what /tf carries)."""
    msg = TransformStamped(child_frame_id=child_frame, transform=matrix_to_transform(T))
    msg.header = Header(frame_id=parent_frame, stamp=stamp or Time())
    return msg


# ---------------------------------------------------------------------------- point clouds
# x, y, z float32 + rgb packed into a float32 (0x00RRGGBB bits): what RViz's RGB8 colour transformer reads.
_CLOUD_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])


def pointcloud2_xyzrgb(points: np.ndarray, colors: np.ndarray, frame_id: str, stamp: Time | None = None) -> PointCloud2:
    """(N, 3) points + (N, 3) colours in [0, 1] -> an unorganised PointCloud2 (x, y, z, rgb).

    Non-finite points are left out so the cloud can declare is_dense.
    """
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)  # (N, 3)
    colors = np.asarray(colors, dtype=np.float32).reshape(-1, 3)  # (N, 3)
    if len(points) != len(colors):
        raise ConversionError(f"{len(points)} points but {len(colors)} colours")
    keep = np.all(np.isfinite(points), axis=1)
    points, colors = points[keep], colors[keep]
    rgb8 = np.clip(np.nan_to_num(colors) * 255.0 + 0.5, 0, 255).astype(np.uint32)  # (N, 3)
    cloud = np.empty(len(points), dtype=_CLOUD_DTYPE)
    cloud["x"], cloud["y"], cloud["z"] = points[:, 0], points[:, 1], points[:, 2]
    cloud["rgb"] = (rgb8[:, 0] << 16) | (rgb8[:, 1] << 8) | rgb8[:, 2]
    msg = PointCloud2(height=1, width=len(cloud), is_bigendian=False, point_step=_CLOUD_DTYPE.itemsize,
                      row_step=_CLOUD_DTYPE.itemsize * len(cloud), is_dense=True)
    msg.header = Header(frame_id=frame_id, stamp=stamp or Time())
    msg.fields = [PointField(name=name, offset=_CLOUD_DTYPE.fields[name][1], datatype=PointField.FLOAT32, count=1)
                  for name in ("x", "y", "z", "rgb")]
    msg.data = cloud.tobytes()
    return msg


_POINTFIELD_DTYPES = {PointField.INT8: "i1", PointField.UINT8: "u1", PointField.INT16: "i2", PointField.UINT16: "u2",
                      PointField.INT32: "i4", PointField.UINT32: "u4", PointField.FLOAT32: "f4", PointField.FLOAT64: "f8"}


def pointcloud2_to_xyzrgb(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray]:
    """PointCloud2 with x, y, z and a packed rgb field -> (N, 3) float32 points, (N, 3) colours in [0, 1]."""
    by_name = {f.name: f for f in msg.fields}
    missing = [name for name in ("x", "y", "z", "rgb") if name not in by_name]
    if missing:
        raise ConversionError(f"PointCloud2 lacks field(s) {', '.join(missing)}; has {', '.join(by_name) or 'none'}")
    n = int(msg.width) * int(msg.height)
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < n * int(msg.point_step):
        raise ConversionError(f"PointCloud2 data has {data.size} bytes, need {n} x {msg.point_step}")
    order = ">" if msg.is_bigendian else "<"
    layout = {"names": [], "formats": [], "offsets": [], "itemsize": int(msg.point_step)}
    for name in ("x", "y", "z", "rgb"):
        field = by_name[name]
        kind = "u4" if name == "rgb" else _POINTFIELD_DTYPES.get(field.datatype)  # rgb: reinterpret the bits
        if kind is None:
            raise ConversionError(f"PointCloud2 field {name} has unknown datatype {field.datatype}")
        layout["names"].append(name)
        layout["formats"].append(order + kind)
        layout["offsets"].append(int(field.offset))
    records = np.ndarray(shape=(n,), dtype=np.dtype(layout), buffer=data)
    points = np.stack([records["x"], records["y"], records["z"]], axis=1).astype(np.float32)  # (N, 3)
    packed = records["rgb"].astype(np.uint32)
    colors = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.float32) / 255.0
    return points, colors


# ---------------------------------------------------------------------------- object markers
class BoxObject(Protocol):
    """What objects_to_markers needs of an object (llm3d_core.mapping.objects.MapObject fits)."""

    id: int
    label: str
    box_min: Any
    box_max: Any


# Distinct colours by object id (a fixed 8-colour palette, so a box keeps its colour across updates).
_PALETTE = np.array([[0.90, 0.10, 0.10], [0.10, 0.60, 0.90], [0.20, 0.75, 0.20], [0.95, 0.60, 0.10],
                     [0.60, 0.30, 0.85], [0.10, 0.80, 0.80], [0.90, 0.30, 0.70], [0.60, 0.60, 0.10]])
# Corner index pairs of a box's 12 edges; corner i has bit 0 -> x max, bit 1 -> y max, bit 2 -> z max.
_BOX_EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]


def objects_to_markers(objects: Iterable[BoxObject], frame_id: str, stamp: Time | None = None,
                       style: str = "line_list", alpha: float = 0.35, namespace: str = "llm3d_objects",
                       line_width: float = 0.02, text_height: float = 0.12) -> MarkerArray:
    """Object boxes + TEXT_VIEW_FACING labels. A DELETEALL marker comes first, so boxes of objects
    that are gone disappear from RViz instead of lingering."""
    if style not in ("line_list", "cube"):
        raise ConversionError(f"marker style must be 'line_list' or 'cube', got {style!r}")
    header = Header(frame_id=frame_id, stamp=stamp or Time())
    markers = [Marker(header=header, ns=namespace, action=Marker.DELETEALL)]
    for obj in objects:
        lo, hi = np.asarray(obj.box_min, np.float64), np.asarray(obj.box_max, np.float64)
        if lo.shape != (3,) or hi.shape != (3,) or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ConversionError(f"object {obj.id}: box must be finite (3,) min/max, got {lo.tolist()}, {hi.tolist()}")
        r, g, b = (float(c) for c in _PALETTE[int(obj.id) % len(_PALETTE)])
        centre, size = (lo + hi) / 2.0, np.maximum(hi - lo, 1e-3)
        box = Marker(header=header, ns=namespace, id=2 * int(obj.id), action=Marker.ADD)
        box.pose.orientation.w = 1.0
        if style == "cube":
            box.type = Marker.CUBE
            box.pose.position = Point(x=float(centre[0]), y=float(centre[1]), z=float(centre[2]))
            box.scale.x, box.scale.y, box.scale.z = (float(s) for s in size)
            box.color = ColorRGBA(r=r, g=g, b=b, a=float(alpha))
        else:
            box.type = Marker.LINE_LIST
            box.scale.x = float(line_width)
            corners = [np.where([(i >> k) & 1 for k in range(3)], hi, lo) for i in range(8)]
            box.points = [Point(x=float(c[0]), y=float(c[1]), z=float(c[2])) for a, b_ in _BOX_EDGES
                          for c in (corners[a], corners[b_])]
            box.color = ColorRGBA(r=r, g=g, b=b, a=1.0)
        text = Marker(header=header, ns=namespace, id=2 * int(obj.id) + 1, type=Marker.TEXT_VIEW_FACING,
                      action=Marker.ADD, text=f"{obj.label or 'object'} #{obj.id}")
        text.pose.position = Point(x=float(centre[0]), y=float(centre[1]), z=float(hi[2] + text_height))
        text.pose.orientation.w = 1.0
        text.scale.z = float(text_height)
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        markers += [box, text]
    return MarkerArray(markers=markers)
