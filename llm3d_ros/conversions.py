"""Message <-> numpy conversions for the llm3d nodes: the one place that knows message layouts.

Nothing here needs a running graph or an initialised rclpy: tests build messages in memory.
Decoding (messages -> numpy) lives in `llm3d_core.messages`, shared with the bag reader, and is
re-exported here; this module adds what needs the rclpy message classes: building messages.
Conventions follow ROS REP 103/105 and `llm3d_core.geometry`: OpenCV optical camera frames,
4x4 homogeneous transforms that map child-frame coordinates into the parent frame, quaternions
stored (x, y, z, w) as in geometry_msgs.

Image payloads arrive as `array.array`; `np.frombuffer` reads them without a copy, and a strided
view honours `step` (row padding) so padded images are never copied twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Transform, TransformStamped
from sensor_msgs.msg import Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from llm3d_core.messages import (  # noqa: F401  (re-exported: the nodes' one conversions module)
    COLOR_ENCODINGS,
    DEPTH_ENCODINGS,
    ConversionError,
    camera_info_to_K,
    compose_matrix,
    decode_depth_m,
    decode_rgb,
    image_to_depth_m,
    image_to_rgb,
    matrix_to_quaternion,
    normalize_quaternion,
    quaternion_slerp,
    quaternion_to_matrix,
    rgbd_frame_from_messages,
    stamp_to_ns,
    transform_to_matrix,
)


# What numpy_to_image accepts: encoding -> (dtype, channels).
_ENCODING_LAYOUT: dict[str, tuple[np.dtype, int]] = {
    **{name: (np.dtype(np.uint8), ch) for name, (ch, _) in COLOR_ENCODINGS.items()},
    **{name: (dtype, 1) for name, dtype in DEPTH_ENCODINGS.items()},
}


# ---------------------------------------------------------------------------- stamps
def ns_to_stamp(ns: int) -> Time:
    if ns < 0:
        raise ConversionError(f"a ROS time stamp cannot be negative, got {ns} ns")
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


# ---------------------------------------------------------------------------- images
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


# ---------------------------------------------------------------------------- transforms
# image_transport's topic suffix per transport; the mapper subscribes <topic>/<suffix> for a compressed one.
TRANSPORTS = {"raw": "", "compressed": "compressed", "compressedDepth": "compressedDepth"}


def transport_topic(topic: str, transport: str) -> str:
    """The topic image_transport publishes `transport` of `topic` on (raw: the topic itself)."""
    if transport not in TRANSPORTS:
        raise ConversionError(f"unknown image transport {transport!r}; expected one of {', '.join(TRANSPORTS)}")
    return f"{topic.rstrip('/')}/{TRANSPORTS[transport]}" if TRANSPORTS[transport] else topic


def rgb_to_compressed(rgb: np.ndarray, codec: str = "jpeg", frame_id: str = "", stamp: Time | None = None,
                      quality: int = 90) -> "CompressedImage":
    """(H, W, 3) uint8 RGB -> CompressedImage as image_transport's `compressed` plugin writes it."""
    import io

    from PIL import Image as PILImage
    from sensor_msgs.msg import CompressedImage

    if codec not in ("jpeg", "png"):
        raise ConversionError(f"colour codec must be jpeg or png, got {codec!r}")
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(rgb, np.uint8)).save(buf, format=codec.upper(),
                                                                 **({"quality": quality} if codec == "jpeg" else {}))
    msg = CompressedImage(format=f"rgb8; {codec} compressed rgb8")
    msg.header = Header(frame_id=frame_id, stamp=stamp or Time())
    msg.data = buf.getvalue()
    return msg


def depth_to_compressed_depth(depth_units: np.ndarray, frame_id: str = "", stamp: Time | None = None) -> "CompressedImage":
    """(H, W) uint16 depth units -> CompressedImage as compressed_depth_image_transport writes 16UC1:
    a 12-byte config header (int32 format 1 = no quantisation, two float32) and a 16-bit PNG."""
    import io

    from PIL import Image as PILImage
    from sensor_msgs.msg import CompressedImage

    depth_units = np.asarray(depth_units)
    if depth_units.ndim != 2 or depth_units.dtype != np.uint16:
        raise ConversionError(f"compressedDepth needs (H, W) uint16 depth units, got {depth_units.dtype} "
                              f"{depth_units.shape}")
    buf = io.BytesIO()
    PILImage.fromarray(depth_units).save(buf, format="PNG")
    msg = CompressedImage(format="16UC1; compressedDepth png")
    msg.header = Header(frame_id=frame_id, stamp=stamp or Time())
    msg.data = np.array([1], "<i4").tobytes() + np.zeros(2, "<f4").tobytes() + buf.getvalue()
    return msg


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


def goal_status_array(goals: Iterable[tuple[int, Time, int]]) -> "GoalStatusArray":
    """Goals a base knows as action_msgs/GoalStatusArray (Nav2's action status shape): each
    (goal number -> its 16-byte id, the goal's own stamp, a GoalStatus.STATUS_* value)."""
    from action_msgs.msg import GoalStatus, GoalStatusArray

    entries = []
    for number, stamp, status in goals:
        entry = GoalStatus(status=int(status))
        entry.goal_info.goal_id.uuid = np.frombuffer(int(number).to_bytes(16, "big"), np.uint8)
        entry.goal_info.stamp = stamp
        entries.append(entry)
    return GoalStatusArray(status_list=entries)


def newest_goal_status(msg: "GoalStatusArray", since_ns: int) -> int | None:
    """Status of the newest goal stamped at or after `since_ns` (ns), or None when there is none.

    Goals stamped before `since_ns` are someone else's earlier goals: their endings say nothing
    about the goal published at `since_ns`."""
    newest: tuple[int, int] | None = None
    for entry in msg.status_list:
        ns = stamp_to_ns(entry.goal_info.stamp)
        if ns >= since_ns and (newest is None or ns >= newest[0]):
            newest = (ns, int(entry.status))
    return None if newest is None else newest[1]


def occupancy_grid_msg(values: np.ndarray, origin_xy: np.ndarray, cell: float, floor_z: float, frame_id: str,
                       stamp: Time | None = None) -> "OccupancyGrid":
    """(rows, cols) int8 nav_msgs values (row = y, col = x; -1 unknown, 0 free, 100 occupied) whose
    cell [0, 0] has its corner at origin_xy -> nav_msgs/OccupancyGrid, as Nav2's map server publishes."""
    from nav_msgs.msg import OccupancyGrid

    values = np.asarray(values)
    if values.ndim != 2 or values.dtype != np.int8:
        raise ConversionError(f"occupancy values must be a 2D int8 array, got {values.dtype} {values.shape}")
    if not (np.isfinite(cell) and cell > 0) or not np.isfinite(np.asarray(origin_xy, np.float64)).all():
        raise ConversionError(f"occupancy grid needs a positive cell and a finite origin, got {cell}, {origin_xy}")
    msg = OccupancyGrid()
    msg.header = Header(frame_id=frame_id, stamp=stamp if stamp is not None else Time())
    msg.info.map_load_time = msg.header.stamp
    msg.info.resolution = float(cell)
    msg.info.height, msg.info.width = (int(n) for n in values.shape)
    msg.info.origin.position.x, msg.info.origin.position.y = (float(v) for v in origin_xy)
    msg.info.origin.position.z = float(floor_z)
    msg.info.origin.orientation.w = 1.0
    msg.data = np.ascontiguousarray(values).ravel().tobytes()  # row-major from (0, 0), as nav_msgs wants
    return msg


def path_msg(positions: np.ndarray, frame_id: str, stamp: Time | None = None) -> "Path":
    """(T, 3) positions -> nav_msgs/Path; each pose faces the next position (the last keeps the
    previous heading), so RViz's Path display with pose axes shows the direction of travel."""
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Path

    positions = np.asarray(positions, np.float64).reshape(-1, 3)
    if not np.isfinite(positions).all():
        raise ConversionError("path positions must be finite")
    header = Header(frame_id=frame_id, stamp=stamp if stamp is not None else Time())
    step = np.diff(positions[:, :2], axis=0)  # (T-1, 2)
    yaw = np.arctan2(step[:, 1], step[:, 0]) if len(step) else np.zeros(0)
    yaw = np.append(yaw, yaw[-1] if len(yaw) else 0.0)  # (T,)
    msg = Path(header=header)
    for (x, y, z), heading in zip(positions, yaw):
        pose = PoseStamped(header=header)
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = float(x), float(y), float(z)
        pose.pose.orientation.z, pose.pose.orientation.w = float(np.sin(heading / 2)), float(np.cos(heading / 2))
        msg.poses.append(pose)
    return msg


# ---------------------------------------------------------------------------- reading what RViz shows
def pose_to_matrix(pose: Any) -> np.ndarray:
    """geometry_msgs/Pose -> (4, 4). An all-zero orientation (a marker left uninitialised) is the
    identity, as RViz takes it."""
    p, q = pose.position, pose.orientation
    quaternion = (q.x, q.y, q.z, q.w) if (q.x, q.y, q.z, q.w) != (0.0, 0.0, 0.0, 0.0) else (0.0, 0.0, 0.0, 1.0)
    return compose_matrix((p.x, p.y, p.z), quaternion)


def occupancy_grid_from_msg(msg: "OccupancyGrid") -> "CoreOccupancyGrid":
    """nav_msgs/OccupancyGrid -> llm3d_core's grid (the inverse of occupancy_grid_msg): int8 values
    (rows, cols), row = y, col = x from the origin corner. A rotated origin is refused."""
    from llm3d_core.mapping.occupancy import OccupancyGrid as CoreOccupancyGrid

    info = msg.info
    rows, cols, cell = int(info.height), int(info.width), float(info.resolution)
    values = np.frombuffer(msg.data, dtype=np.int8) if len(msg.data) else np.zeros(0, np.int8)
    if values.size != rows * cols:
        raise ConversionError(f"OccupancyGrid has {values.size} cells, its info says {cols}x{rows}")
    if not (np.isfinite(cell) and cell > 0):
        raise ConversionError(f"OccupancyGrid resolution must be > 0, got {cell}")
    T = pose_to_matrix(info.origin)
    if abs(T[0, 1]) > 1e-6 or T[0, 0] < 0:
        raise ConversionError("OccupancyGrid origins rotated about z are not supported")
    return CoreOccupancyGrid(values.reshape(rows, cols).copy(), T[:2, 3].copy(), cell)


def live_markers(arrays: Iterable[MarkerArray]) -> list[Marker]:
    """The markers RViz shows after receiving `arrays` in order: ADD/MODIFY replaces the marker with
    the same (ns, id), DELETE removes it, DELETEALL removes every marker received before it."""
    live: dict[tuple[str, int], Marker] = {}
    for array in arrays:
        for marker in array.markers:
            key = (marker.ns, int(marker.id))
            if marker.action == Marker.DELETEALL:
                live.clear()
            elif marker.action == Marker.DELETE:
                live.pop(key, None)
            else:
                live[key] = marker
    return list(live.values())


_BOX_TYPES = (Marker.CUBE, Marker.LINE_LIST, Marker.LINE_STRIP, Marker.CUBE_LIST, Marker.POINTS, Marker.SPHERE)


def marker_boxes(markers: Iterable[Marker]) -> list[tuple[str, "LabelledBox"]]:
    """(frame_id, box) of each shape marker (the axis-aligned box around its extent) with the text of
    the TEXT_VIEW_FACING marker above it (same ns and frame, its x, y inside the box's footprint) as
    label; a text with no box under it becomes a label-only box (min == max). As objects_to_markers
    and the reasoner's grounding markers draw them."""
    from llm3d_core.mapping.layers import LabelledBox

    shapes: list[tuple[Marker, LabelledBox]] = []
    texts: list[Marker] = []
    for marker in markers:
        if marker.type == Marker.TEXT_VIEW_FACING:
            texts.append(marker)
        elif marker.type in _BOX_TYPES:
            T = pose_to_matrix(marker.pose)
            if marker.type in (Marker.CUBE, Marker.SPHERE):
                half = np.abs([marker.scale.x, marker.scale.y, marker.scale.z]) / 2.0
                local = np.array([-half, half])  # (2, 3)
            elif len(marker.points):
                local = np.array([[p.x, p.y, p.z] for p in marker.points])  # (P, 3)
            else:
                continue
            color = (float(marker.color.r), float(marker.color.g), float(marker.color.b))
            box = LabelledBox(local.min(axis=0), local.max(axis=0), "", color).transformed(T)
            shapes.append((marker, box))
    out = [(m.header.frame_id, box) for m, box in shapes]
    for text in texts:
        at = pose_to_matrix(text.pose)[:3, 3]
        under = [box for m, box in shapes if m.ns == text.ns and m.header.frame_id == text.header.frame_id
                 and not box.label and np.all(box.box_min[:2] - 1e-6 <= at[:2])
                 and np.all(at[:2] <= box.box_max[:2] + 1e-6)]
        if under:  # overlapping boxes: the one centred under the text
            nearest = min(under, key=lambda b: float(np.linalg.norm((b.box_min[:2] + b.box_max[:2]) / 2 - at[:2])))
            nearest.label = text.text
        else:
            color = (float(text.color.r), float(text.color.g), float(text.color.b))
            out.append((text.header.frame_id, LabelledBox(at.copy(), at.copy(), text.text, color)))
    return out


def path_to_xyz(msg: Any) -> np.ndarray:
    """nav_msgs/Path -> (T, 3) float64 positions, in the path's header frame."""
    return np.array([[p.pose.position.x, p.pose.position.y, p.pose.position.z] for p in msg.poses],
                    dtype=np.float64).reshape(-1, 3)


def relevancy_cloud(centers: np.ndarray, scores: np.ndarray, max_points: int, frame_id: str,
                    stamp: Time | None = None) -> PointCloud2:
    """Voxel centres (M, 3) coloured by a text query's scores (M,): blue for the query's lowest score,
    red for its highest (min-max per query, as OpenScene/ConceptFusion draw relevancy); at most
    max_points, evenly subsampled."""
    centers, scores = np.asarray(centers, np.float64).reshape(-1, 3), np.asarray(scores, np.float64).ravel()
    if len(centers) != len(scores):
        raise ConversionError(f"{len(centers)} voxel centres but {len(scores)} scores")
    if len(centers) > max_points:
        keep = np.linspace(0, len(centers) - 1, max_points).astype(np.int64)
        centers, scores = centers[keep], scores[keep]
    span = float(scores.max() - scores.min()) if len(scores) else 0.0
    s = (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)  # (M,) in [0, 1]
    colors = np.stack([s, np.full_like(s, 0.2), 1.0 - s], axis=1)  # (M, 3)
    return pointcloud2_xyzrgb(centers, colors, frame_id, stamp)
