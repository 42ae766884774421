"""One-pass CPU kernel for the voxel map's running-mean update (numba).

With torch ops the update reads and writes the frame's (U, C) feature rows about six times
(sparse product, gather of the old means, scale, add, scatter). This kernel visits each touched
row once: scales it and adds its samples' merged bilinear taps in place.
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
    """In place, for each touched voxel u (slot s = slots[u]) and its samples n:
        features[s] = features[s] * keep[u] + sum_n share[n] * sum_k tap_weight[n, k] * rows[tap_index[n, k]]
        colors[s]   = colors[s]   * keep[u] + sum_n share[n] * sample_colors[n]

    features (S, C) f32 map, colors (S, 3) f32 map, slots (U,) i64, keep (U,) f32, inverse (N,) i64
    sample -> voxel, tap_index (N, K) i64 rows of `rows` (P, C) f32, tap_weight (N, K) f32 >= 0,
    share (N,) f32 = 1 / (the voxel's new total weight), sample_colors (N, 3) f32.

    Samples are visited voxel by voxel (a counting sort of `inverse`), and the taps of a voxel's
    samples are merged first: neighbouring samples share most of their bilinear taps, so each
    voxel row gets about half as many (C,)-wide updates, and is read and written once.
    """
    n_voxels, n_samples, channels = slots.shape[0], inverse.shape[0], features.shape[1]
    start = np.zeros(n_voxels + 1, np.int64)  # CSR offsets of each voxel's samples
    for n in range(n_samples):
        start[inverse[n] + 1] += 1
    for u in range(n_voxels):
        start[u + 1] += start[u]
    fill = start[:-1].copy()
    order = np.empty(n_samples, np.int64)
    for n in range(n_samples):
        order[fill[inverse[n]]] = n
        fill[inverse[n]] += 1
    merged = np.zeros(rows.shape[0], np.float32)  # a voxel's summed weight per feature-map row
    owner = np.full(rows.shape[0], -1, np.int64)  # which voxel last used that entry
    taps = np.empty(rows.shape[0], np.int64)  # the rows a voxel touches
    for u in range(n_voxels):
        s = slots[u]
        k = keep[u]
        m = 0
        for c in range(3):
            colors[s, c] *= k
        for j in range(start[u], start[u + 1]):
            n = order[j]
            sh = share[n]
            for t in range(tap_index.shape[1]):
                w = tap_weight[n, t] * sh
                if w != 0.0:  # taps outside the feature map have weight 0
                    p = tap_index[n, t]
                    if owner[p] != u:
                        owner[p] = u
                        merged[p] = 0.0
                        taps[m] = p
                        m += 1
                    merged[p] += w
            for c in range(3):
                colors[s, c] += sh * sample_colors[n, c]
        row = features[s]
        for c in range(channels):
            row[c] *= k
        for i in range(m):
            w = merged[taps[i]]
            src = rows[taps[i]]
            for c in range(channels):
                row[c] += w * src[c]


# nogil: the ROS mapper fuses on a worker thread; cache: compiled once per machine, not per process.
fuse_rows = numba.njit(cache=True, nogil=True)(_fuse_rows) if AVAILABLE else None
