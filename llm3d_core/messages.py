"""Decoding of ROS message layouts into numpy, shared by the ROS nodes and the bag reader.

The functions read messages by field name only (duck typing), so rclpy messages and the message
objects `rosbags` deserializes from recorded bags go through the same code: a frame read from a
bag is decoded exactly as the live mapper node decodes it. Building messages (which needs the
rclpy message classes) stays in `llm3d_ros.conversions`.

Conventions follow ROS REP 103/105 and `llm3d_core.geometry`: OpenCV optical camera frames,
4x4 homogeneous transforms that map child-frame coordinates into the parent frame, quaternions
stored (x, y, z, w) as in geometry_msgs. Image payloads may be `array.array`, bytes or numpy
arrays; `np.frombuffer` reads them without a copy, and a strided view honours `step` (row
padding) so padded images are never copied twice.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

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

# ---------------------------------------------------------------------------- stamps
def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (exact, unlike float seconds)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


# ---------------------------------------------------------------------------- images
def _image_view(msg: Any, dtype: np.dtype, channels: int) -> np.ndarray:
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


def image_to_rgb(msg: Any) -> np.ndarray:
    """Colour Image (rgb8, bgr8, rgba8, bgra8, mono8) -> (H, W, 3) uint8 RGB, C-contiguous copy."""
    layout = COLOR_ENCODINGS.get(msg.encoding)
    if layout is None:
        raise ConversionError(f"unsupported colour encoding '{msg.encoding}'; expected one of "
                              f"{', '.join(COLOR_ENCODINGS)}")
    channels, order = layout
    view = _image_view(msg, np.dtype(np.uint8), channels)
    return np.ascontiguousarray(view[:, :, list(order)])  # (H, W, 3); drops alpha, reorders BGR


def image_to_depth_m(msg: Any, depth_scale: float = 1000.0) -> np.ndarray:
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


def camera_info_to_K(msg: Any) -> np.ndarray:
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


def is_compressed(msg: Any) -> bool:
    """sensor_msgs/CompressedImage (has `format`) rather than sensor_msgs/Image (has `encoding`)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


# compressed_depth_image_transport prefixes its PNG with a 12-byte config header: int32 format
# (0 = inverse-depth quantisation for 32FC1, 1 = none) and two float32 quantisation parameters.
_COMPRESSED_DEPTH_HEADER = 12


def _decode_image_bytes(data: Any, what: str, fmt: str) -> np.ndarray:
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(np.frombuffer(data, np.uint8).tobytes())) as img:
            img.load()
            return np.asarray(img)
    except Exception as err:  # PIL raises many types for bad payloads; all mean "not decodable"
        raise ConversionError(f"{what} CompressedImage (format '{fmt}') cannot be decoded: {err}") from err


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """CompressedImage (jpeg or png, as image_transport's `compressed` plugin writes) -> (H, W, 3) uint8 RGB.

    The format string says the source encoding ("bgr8; jpeg compressed bgr8"); the decoded image
    is RGB whatever it was, since JPEG/PNG store RGB and the plugin converts before compressing.
    """
    array = _decode_image_bytes(msg.data, "colour", msg.format)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)  # (H, W, 3) from mono
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
        raise ConversionError(f"colour CompressedImage decodes to shape {array.shape} {array.dtype}, "
                              "expected 8-bit RGB(A)")
    return np.ascontiguousarray(array[:, :, :3])


def compressed_to_depth_m(msg: Any, depth_scale: float = 1000.0) -> np.ndarray:
    """Depth CompressedImage -> (H, W) float32 metres; invalid pixels become 0.

    Accepts compressed_depth_image_transport's "16UC1; compressedDepth png" and "32FC1;
    compressedDepth png" (config header + PNG; 32FC1 is stored as quantised inverse depth), and
    a plain 16-bit PNG ("16UC1; png").
    """
    fmt = str(msg.format)
    data = np.frombuffer(msg.data, np.uint8)
    quant = None
    if "compresseddepth" in fmt.lower():
        if data.size <= _COMPRESSED_DEPTH_HEADER:
            raise ConversionError(f"compressedDepth payload has only {data.size} bytes")
        header = data[:_COMPRESSED_DEPTH_HEADER].view("<i4")  # little-endian on every ROS 2 platform
        quant = (int(header[0]), data[4:_COMPRESSED_DEPTH_HEADER].view("<f4").astype(np.float64))
        data = data[_COMPRESSED_DEPTH_HEADER:]
    raw = _decode_image_bytes(data, "depth", fmt)
    if raw.ndim != 2:
        raise ConversionError(f"depth CompressedImage decodes to shape {raw.shape}, expected (H, W)")
    raw = raw.astype(np.uint16)
    if fmt.strip().startswith("32FC1"):
        if quant is None or quant[0] != 0:
            raise ConversionError(f"32FC1 depth needs compressedDepth inverse-depth quantisation, got format '{fmt}'")
        a, b = quant[1]
        valid = raw > 0
        metres = np.zeros(raw.shape, np.float32)
        metres[valid] = (a / (raw[valid].astype(np.float64) - b)).astype(np.float32)
        metres[~np.isfinite(metres) | (metres < 0)] = 0.0
        return metres
    if not (np.isfinite(depth_scale) and depth_scale > 0):
        raise ConversionError(f"depth_scale must be a finite number > 0, got {depth_scale}")
    metres = raw.astype(np.float32) / np.float32(depth_scale)
    metres[raw == np.iinfo(np.uint16).max] = 0.0
    return metres


def decode_rgb(msg: Any) -> np.ndarray:
    """Image or CompressedImage -> (H, W, 3) uint8 RGB."""
    return compressed_to_rgb(msg) if is_compressed(msg) else image_to_rgb(msg)


def decode_depth_m(msg: Any, depth_scale: float = 1000.0) -> np.ndarray:
    """Image or CompressedImage -> (H, W) float32 metres."""
    return compressed_to_depth_m(msg, depth_scale) if is_compressed(msg) else image_to_depth_m(msg, depth_scale)


def rgbd_frame_from_messages(color: Any, depth: Any, info: Any, T_world_camera: np.ndarray,
                             depth_scale: float = 1000.0) -> RGBDFrame:
    """A posed RGBDFrame from a colour/depth pair (Image or CompressedImage each), its CameraInfo
    and the camera pose (4x4)."""
    rgb = decode_rgb(color)
    depth_m = decode_depth_m(depth, depth_scale)
    if rgb.shape[:2] != depth_m.shape:
        raise ConversionError(f"colour {rgb.shape[1]}x{rgb.shape[0]} and depth {depth_m.shape[1]}x{depth_m.shape[0]} "
                              "sizes differ (the mapper needs registered, equal-size images)")
    if info.width and info.height and (info.width, info.height) != (rgb.shape[1], rgb.shape[0]):
        raise ConversionError(f"CameraInfo is for {info.width}x{info.height} but the images are "
                              f"{rgb.shape[1]}x{rgb.shape[0]}")
    return RGBDFrame(rgb=rgb, depth=depth_m, K=camera_info_to_K(info), T_world_camera=T_world_camera,
                     timestamp=stamp_to_ns(color.header.stamp) * 1e-9)


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


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by yaw (radians) about +z."""
    return 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)


def quaternion_to_yaw(x: float, y: float, z: float, w: float) -> float:
    """Heading about +z of a unit quaternion (x, y, z, w) (roll and pitch ignored)."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


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


def transform_to_matrix(msg: Any) -> np.ndarray:
    """geometry_msgs Transform(Stamped) -> (4, 4): maps child-frame points into the parent frame."""
    tf = getattr(msg, "transform", msg)  # a TransformStamped wraps the Transform
    t, r = tf.translation, tf.rotation
    return compose_matrix((t.x, t.y, t.z), (r.x, r.y, r.z, r.w))


