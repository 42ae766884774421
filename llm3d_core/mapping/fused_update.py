"""One-pass CPU kernel for the voxel map's running-mean update (numba).

With torch ops the update reads and writes the frame's (U, C) feature rows about six times
(sparse product, gather of the old means, scale, add, scatter) and runs a dozen small ops for the
per-voxel weights, counts, times and instance votes. This kernel visits each touched voxel once:
scales its row, adds its samples' merged bilinear taps in place, and updates its bookkeeping.
Same arithmetic as `VoxelFeatureMap`'s torch path (tests compare them); used for float32 maps on
the CPU, the torch path everywhere else (CUDA, float16 storage, dense per-sample features).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)  # nogil: the ROS mapper fuses on a worker thread
def fuse_frame(features: np.ndarray, colors: np.ndarray, weights: np.ndarray, observations: np.ndarray,
               last_seen: np.ndarray, instance: np.ndarray, votes: np.ndarray, slots: np.ndarray,
               inverse: np.ndarray, tap_index: np.ndarray, tap_weight: np.ndarray, rows: np.ndarray,
               sample_colors: np.ndarray, sample_instance: np.ndarray, timestamp: float, weight_cap: float) -> None:
    """In place, for each touched voxel u (slot s = slots[u]) and its samples n:
        total       = w_old + count,  w_old = weights[s] (0 for a new or recycled slot)
        features[s] = features[s] * w_old / total + sum_n sum_k tap_weight[n, k] * rows[tap_index[n, k]] / total
        colors[s]   = colors[s]   * w_old / total + sum_n sample_colors[n] / total
        weights[s] = min(total, weight_cap), observations[s] += 1 (1 when new), last_seen[s] = timestamp,
    and the running-majority instance vote (VoxelFeatureMap._vote_instances) when sample_instance
    has N entries (empty: none; a new voxel's instance resets to -1).

    Map arrays (S, ...): features f32 (S, C), colors f32 (S, 3), weights f32, observations i32,
    last_seen f64, instance i64, votes i32. Frame: slots (U,) i64, inverse (N,) i64 sample -> voxel,
    tap_index (N, K) i64 rows of `rows` (P, C) f32, tap_weight (N, K) f32 >= 0, sample_colors
    (N, 3) f32, sample_instance (N,) or (0,) i64. A slot counts as new when its observations are 0.

    Samples are visited voxel by voxel (a stable counting sort of `inverse`), and the taps of a
    voxel's samples are merged first: neighbouring samples share most of their bilinear taps, so
    each voxel row gets about half as many (C,)-wide updates, and is read and written once.
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
    labelled = sample_instance.shape[0] == n_samples
    merged = np.zeros(rows.shape[0], np.float32)  # a voxel's summed weight per feature-map row
    owner = np.full(rows.shape[0], -1, np.int64)  # which voxel last used that entry
    taps = np.empty(rows.shape[0], np.int64)  # the rows a voxel touches
    for u in range(n_voxels):
        s = slots[u]
        new = observations[s] == 0
        w_old = np.float32(0.0) if new else weights[s]
        total = w_old + np.float32(start[u + 1] - start[u])
        k = w_old / total  # float32 throughout, as the torch path
        sh = np.float32(1.0) / total
        m = 0
        for c in range(3):
            colors[s, c] *= k
        for j in range(start[u], start[u + 1]):
            n = order[j]
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
        weights[s] = min(total, np.float32(weight_cap))
        observations[s] = 1 if new else observations[s] + 1
        last_seen[s] = timestamp
        if labelled:  # the frame's label for the voxel is its first sample's (voxels are small)
            label = sample_instance[order[start[u]]]
            current = -1 if new else instance[s]
            v = 0 if new else votes[s]
            v = v + 1 if label == current else v - 1
            if v <= 0:
                instance[s], votes[s] = label, 1
            else:
                instance[s], votes[s] = current, v
        elif new:
            instance[s], votes[s] = -1, 0
