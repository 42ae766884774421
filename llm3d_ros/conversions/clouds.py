"""PointCloud2 with xyz + packed rgb, both ways, and the relevancy cloud of a grounding query."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from llm3d_core.messages import ConversionError


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
