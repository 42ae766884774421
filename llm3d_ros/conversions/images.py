"""Images, compressed images, CameraInfo and stamps built from numpy (decoding: llm3d_core.messages)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from llm3d_core.messages import COLOR_ENCODINGS, DEPTH_ENCODINGS, ConversionError

if TYPE_CHECKING:
    from sensor_msgs.msg import CompressedImage


# What numpy_to_image accepts: encoding -> (dtype, channels).
_ENCODING_LAYOUT: dict[str, tuple[np.dtype, int]] = {
    **{name: (np.dtype(np.uint8), ch) for name, (ch, _) in COLOR_ENCODINGS.items()},
    **{name: (dtype, 1) for name, dtype in DEPTH_ENCODINGS.items()},
}


def ns_to_stamp(ns: int) -> Time:
    if ns < 0:
        raise ConversionError(f"a ROS time stamp cannot be negative, got {ns} ns")
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


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


UINT16_NO_RETURN = 0  # 16UC1 depth: 0 marks "no measurement" (REP 118 uses NaN for 32FC1; 0 is also accepted)


def camera_info_from_K(K: np.ndarray, width: int, height: int, frame_id: str, stamp: Time | None = None) -> CameraInfo:
    """(3, 3) pinhole intrinsics of an undistorted camera -> CameraInfo (plumb_bob, zero distortion).

    P = [K | 0] and R = I: a monocular camera whose images are already rectified, as simulated
    images are.
    """
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ConversionError(f"K must be a finite 3x3 matrix with fx, fy > 0, got {K.tolist()}")
    if width <= 0 or height <= 0:
        raise ConversionError(f"camera size must be positive, got {width}x{height}")
    P = np.hstack([K, np.zeros((3, 1))])  # (3, 4)
    msg = CameraInfo(width=int(width), height=int(height), distortion_model="plumb_bob",
                     d=[0.0] * 5, k=K.ravel().tolist(), r=np.eye(3).ravel().tolist(), p=P.ravel().tolist())
    msg.header = Header(frame_id=frame_id, stamp=stamp or Time())
    return msg


def depth_to_image(depth_m: np.ndarray, encoding: str, depth_scale: float, frame_id: str,
                   stamp: Time | None = None) -> Image:
    """(H, W) float metres (0 = invalid) -> a 16UC1 (units of 1/depth_scale m) or 32FC1 (m) Image.

    16UC1 rounds to the nearest unit; depths that do not fit (or are not finite) become 0, the
    "no return" value the mapper already ignores.
    """
    depth_m = np.asarray(depth_m, np.float32)
    if depth_m.ndim != 2:
        raise ConversionError(f"depth must be (H, W), got shape {depth_m.shape}")
    if encoding == "32FC1":
        clean = np.where(np.isfinite(depth_m) & (depth_m > 0), depth_m, 0.0).astype(np.float32)
        return numpy_to_image(clean, "32FC1", frame_id, stamp)
    if encoding != "16UC1":
        raise ConversionError(f"depth encoding must be 16UC1 or 32FC1, got {encoding!r}")
    if not (math.isfinite(depth_scale) and depth_scale > 0):
        raise ConversionError(f"depth_scale must be a finite number > 0, got {depth_scale}")
    units = np.rint(np.nan_to_num(depth_m, nan=0.0, posinf=0.0, neginf=0.0) * np.float32(depth_scale))  # (H, W)
    units[(units < 0) | (units >= np.iinfo(np.uint16).max)] = UINT16_NO_RETURN
    return numpy_to_image(units.astype(np.uint16), "16UC1", frame_id, stamp)
