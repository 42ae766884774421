"""Posed RGB-D frames: validation, depth conversion and back-projection.

Conventions: OpenCV camera (x right, y down, z forward); `T_world_camera` maps camera
coordinates to world (map) coordinates; intrinsics K are the 3x3 pinhole matrix of the
colour/depth image (registered). Depth is uint16 in units of 1/`depth_scale` metres (e.g.
millimetres with depth_scale=1000) or float32 metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class FrameError(ValueError):
    """A frame is malformed; the message says what and with which value."""


@dataclass
class RGBDFrame:
    """One posed RGB-D observation."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) uint16 (units of 1/depth_scale m) or float32/float64 metres
    K: np.ndarray  # (3, 3) pinhole intrinsics
    T_world_camera: np.ndarray  # (4, 4) rigid transform camera -> world
    timestamp: float = 0.0  # seconds
    depth_scale: float = 1000.0  # uint16 depth units per metre; ignored for float depth
    instance_ids: np.ndarray | None = None  # (H, W) int, optional (the simulator provides them)


def check_rigid(T: np.ndarray, name: str = "pose", tol: float = 1e-3) -> np.ndarray:
    """Returns T as float64 (4, 4) or raises FrameError when it is not a finite rigid transform."""
    T = np.asarray(T)
    if T.shape != (4, 4):
        raise FrameError(f"{name} must be 4x4, got shape {T.shape}")
    T = T.astype(np.float64)
    if not np.all(np.isfinite(T)):
        raise FrameError(f"{name} has non-finite entries")
    R = T[:3, :3]
    if np.abs(R @ R.T - np.eye(3)).max() > tol or abs(np.linalg.det(R) - 1.0) > tol:
        raise FrameError(f"{name} rotation is not orthonormal with det +1 (det={np.linalg.det(R):.4f})")
    if np.abs(T[3] - [0, 0, 0, 1]).max() > 1e-6:
        raise FrameError(f"{name} last row must be [0, 0, 0, 1], got {T[3].tolist()}")
    return T


def check_intrinsics(K: np.ndarray) -> np.ndarray:
    K = np.asarray(K)
    if K.shape != (3, 3):
        raise FrameError(f"intrinsics K must be 3x3, got shape {K.shape}")
    K = K.astype(np.float64)
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise FrameError(f"intrinsics K must be finite with fx, fy > 0, got fx={K[0, 0]}, fy={K[1, 1]}")
    return K


def depth_to_metres(depth: np.ndarray, depth_scale: float) -> np.ndarray:
    """float32 metres; non-finite or non-positive values become 0 (invalid)."""
    if depth.dtype == np.uint16:
        if not depth_scale > 0:
            raise FrameError(f"depth_scale must be > 0 for uint16 depth, got {depth_scale}")
        metres = depth.astype(np.float32) / np.float32(depth_scale)
        metres[depth == np.iinfo(np.uint16).max] = 0.0  # 65535 marks invalid in common sensors
        return metres
    if depth.dtype in (np.float32, np.float64):
        metres = depth.astype(np.float32, copy=True)
        metres[~np.isfinite(metres) | (metres < 0)] = 0.0
        return metres
    raise FrameError(f"depth must be uint16 (scaled) or float32 metres, got dtype {depth.dtype}")


def validate_frame(frame: RGBDFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checks a frame; returns (depth in metres (H, W) float32, K, T_world_camera) as float arrays."""
    K, T = check_frame(frame)
    return depth_to_metres(frame.depth, frame.depth_scale), K, T


def check_frame(frame: RGBDFrame) -> tuple[np.ndarray, np.ndarray]:
    """validate_frame's checks without the depth conversion; returns (K, T_world_camera) float64."""
    rgb, depth = frame.rgb, frame.depth
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise FrameError(f"rgb must be an (H, W, 3) array, got shape {getattr(rgb, 'shape', None)}")
    if rgb.dtype != np.uint8:
        raise FrameError(f"rgb must be uint8, got dtype {rgb.dtype}")
    if not isinstance(depth, np.ndarray) or depth.ndim != 2:
        raise FrameError(f"depth must be an (H, W) array, got shape {getattr(depth, 'shape', None)}")
    if depth.shape != rgb.shape[:2]:
        raise FrameError(f"rgb {rgb.shape[:2]} and depth {depth.shape} sizes differ")
    if min(depth.shape) < 2:
        raise FrameError(f"image too small: {depth.shape}")
    if frame.instance_ids is not None and frame.instance_ids.shape != depth.shape:
        raise FrameError(f"instance_ids {frame.instance_ids.shape} and depth {depth.shape} sizes differ")
    if not np.isfinite(frame.timestamp):
        raise FrameError(f"timestamp must be finite, got {frame.timestamp}")
    return check_intrinsics(frame.K), check_rigid(frame.T_world_camera, "T_world_camera")


def pixel_grid(height: int, width: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (v, u) at the centres of stride x stride cells, as int arrays (h*w,)."""
    vs = np.arange(stride // 2, height, stride)
    us = np.arange(stride // 2, width, stride)
    vv, uu = np.meshgrid(vs, us, indexing="ij")  # (h, w)
    return vv.ravel(), uu.ravel()


def backproject(depth_m: np.ndarray, K: np.ndarray, v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Camera-frame points (N, 3) of pixels (v, u) with metric depth (OpenCV convention)."""
    z = depth_m[v, u].astype(np.float64)
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=1)


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Applies a 4x4 transform to (N, 3) points."""
    return points @ T[:3, :3].T + T[:3, 3]


def box_iou_3d(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two axis-aligned 3D boxes [min x, y, z, max x, y, z] (6,) (0 when either has no volume).

    The one box IoU of the evaluation, the benchmarks, the map's object tracking and the reasoner;
    training's losses use the batched, differentiable torch form (model/univlg_losses.box_iou_3d)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    inter = np.clip(np.minimum(a[3:], b[3:]) - np.maximum(a[:3], b[:3]), 0, None).prod()
    union = np.prod(a[3:] - a[:3]) + np.prod(b[3:] - b[:3]) - inter
    return float(inter / union) if union > 0 else 0.0
