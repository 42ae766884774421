"""Per-frame lifting for the fusion step, compiled with numba: depth to metres, and samples to 3D.

3D-LLM (Hong et al. 2023, section 3.2) lifts each view's 2D features onto 3D points through depth
and pose. The mapper does it at a pixel stride for every frame; as numpy/torch expressions the
conversion, range clipping, back-projection, transform and gathers were a dozen passes and
temporaries over the frame, about 3 ms at 640x480. Here they are two passes: one over the depth
image (it is needed whole by the TSDF), one over the lifting grid.
"""

from __future__ import annotations

import numba
import numpy as np

from llm3d_core.geometry import FrameError

_UINT16_INVALID = np.iinfo(np.uint16).max  # 65535 marks invalid in common sensors


@numba.njit(cache=True, nogil=True)
def _metres_uint16(depth: np.ndarray, scale: np.float32, lo: np.float32, hi: np.float32) -> np.ndarray:
    out = np.empty(depth.shape, np.float32)
    for i in range(depth.shape[0]):
        for j in range(depth.shape[1]):
            d = depth[i, j]
            m = np.float32(d) / scale
            out[i, j] = 0.0 if d == _UINT16_INVALID or m < lo or m > hi else m
    return out


@numba.njit(cache=True, nogil=True)
def _metres_float(depth: np.ndarray, lo: np.float32, hi: np.float32) -> np.ndarray:
    out = np.empty(depth.shape, np.float32)
    for i in range(depth.shape[0]):
        for j in range(depth.shape[1]):
            m = np.float32(depth[i, j])
            out[i, j] = m if np.isfinite(m) and m >= lo and m <= hi and m >= 0 else 0.0
    return out


def depth_in_range(depth: np.ndarray, depth_scale: float, depth_min: float = 0.0,
                   depth_max: float = np.inf) -> np.ndarray:
    """float32 metres (H, W) of uint16 (scaled) or float depth; 0 (invalid) where the value is
    non-finite, negative, the sensor's 65535, or outside [depth_min, depth_max].

    Same values as `geometry.depth_to_metres` followed by the range check, in one pass.
    """
    lo, hi = np.float32(depth_min), np.float32(min(depth_max, np.finfo(np.float32).max))
    if depth.dtype == np.uint16:
        if not depth_scale > 0:
            raise FrameError(f"depth_scale must be > 0 for uint16 depth, got {depth_scale}")
        return _metres_uint16(depth, np.float32(depth_scale), lo, hi)
    if depth.dtype in (np.float32, np.float64):
        return _metres_float(depth, lo, hi)
    raise FrameError(f"depth must be uint16 (scaled) or float32 metres, got dtype {depth.dtype}")


@numba.njit(cache=True, nogil=True)
def lift_grid(depth_m: np.ndarray, rgb: np.ndarray, K: np.ndarray, T: np.ndarray, v: np.ndarray, u: np.ndarray,
              grid_index: np.ndarray, grid_weight: np.ndarray):
    """The grid pixels (v, u) (G,) with valid depth, lifted: (selected (N,) int64 grid positions,
    world points (N, 3) float64, colours (N, 3) float32 in [0, 1], and their rows of the grid's
    bilinear tap table (grid_index (G, K) int64, grid_weight (G, K) float32): (N, K) each).

    depth_m (H, W) float32 metres (0 = invalid), rgb (H, W, 3) uint8, K (3, 3) and T_world_camera
    (4, 4) float64. Camera frame: OpenCV (x right, y down, z forward).
    """
    g, taps = v.shape[0], grid_index.shape[1]
    selected = np.empty(g, np.int64)
    n = 0
    for i in range(g):
        if depth_m[v[i], u[i]] > 0:
            selected[n] = i
            n += 1
    selected = selected[:n]
    points = np.empty((n, 3), np.float64)
    colors = np.empty((n, 3), np.float32)
    tap_index = np.empty((n, taps), np.int64)
    tap_weight = np.empty((n, taps), np.float32)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    for j in range(n):
        i = selected[j]
        r, c = v[i], u[i]
        z = np.float64(depth_m[r, c])
        x = (c - cx) * z / fx
        y = (r - cy) * z / fy
        for a in range(3):
            points[j, a] = T[a, 0] * x + T[a, 1] * y + T[a, 2] * z + T[a, 3]
            colors[j, a] = np.float32(rgb[r, c, a]) / np.float32(255.0)
        for t in range(taps):
            tap_index[j, t] = grid_index[i, t]
            tap_weight[j, t] = grid_weight[i, t]
    return selected, points, colors, tap_index, tap_weight
