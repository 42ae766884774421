"""One-pass CPU kernel for the voxel map's running-mean update (numba).

The fusion step's cost on a CPU is memory traffic over the frame's (U, C) feature rows, not
arithmetic: with torch ops the update reads and writes those rows about six times (sparse
product, gather of the old means, scale, add, scatter). This kernel scales each touched row once
and adds every sample's bilinear taps straight into it, so the rows are read and written once.
Same arithmetic as `VoxelFeatureMap`'s torch path (tests compare them); used for float32 maps on
the CPU, the torch path everywhere else (CUDA, float16 storage, dense per-sample features).
"""

from __future__ import annotations

import numpy as np

try:  # numba is a dependency; without it the torch path still works, only slower
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

AVAILABLE = numba is not None


def _fuse_rows(features: np.ndarray, colors: np.ndarray, slots: np.ndarray, keep: np.ndarray, inverse: np.ndarray,
               tap_index: np.ndarray, tap_weight: np.ndarray, share: np.ndarray, rows: np.ndarray,
               sample_colors: np.ndarray) -> None:
    """In place, for each touched voxel u (slot s = slots[u]) and each sample n of it:
        features[s] = features[s] * keep[u] + sum_n share[n] * sum_k tap_weight[n, k] * rows[tap_index[n, k]]
        colors[s]   = colors[s]   * keep[u] + sum_n share[n] * sample_colors[n]

    features (S, C) f32 map, colors (S, 3) f32 map, slots (U,) i64, keep (U,) f32, inverse (N,) i64
    sample -> voxel, tap_index (N, K) i64 rows of `rows` (P, C) f32, tap_weight (N, K) f32, share (N,)
    f32 = 1 / (the voxel's new total weight), sample_colors (N, 3) f32.
    """
    channels = features.shape[1]
    for u in range(slots.shape[0]):
        s = slots[u]
        k = keep[u]
        for c in range(channels):
            features[s, c] *= k
        for c in range(3):
            colors[s, c] *= k
    for n in range(inverse.shape[0]):
        s = slots[inverse[n]]
        sh = share[n]
        for t in range(tap_index.shape[1]):
            w = tap_weight[n, t] * sh
            if w != 0.0:  # taps outside the feature map have weight 0
                p = tap_index[n, t]
                for c in range(channels):
                    features[s, c] += w * rows[p, c]
        for c in range(3):
            colors[s, c] += sh * sample_colors[n, c]


# nogil: the ROS mapper fuses on a worker thread; cache: compiled once per machine, not per process.
fuse_rows = numba.njit(cache=True, nogil=True)(_fuse_rows) if AVAILABLE else None
