"""The mapper's compiled lifting pass against the numpy geometry it replaces."""

import numpy as np
import pytest

from llm3d_core.geometry import FrameError, backproject, depth_to_metres, transform_points
from llm3d_core.mapping.lifting import depth_in_range, lift_grid
from llm3d_core.mapping.taps import grid_taps, lifting_grid


def test_depth_in_range_equals_conversion_then_clipping():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 9000, (48, 64)).astype(np.uint16)
    raw[0, :5] = [0, 65535, 99, 100, 5001]  # invalid marker and the range's edges (scale 1000)
    metric = raw.astype(np.float64) / 1000.0
    metric[1, :4] = [np.nan, np.inf, -np.inf, -1.0]
    for depth, scale in ((raw, 1000.0), (metric, 1.0), (metric.astype(np.float32), 1.0)):
        want = depth_to_metres(depth, scale)
        want[(want < 0.1) | (want > 5.0)] = 0.0
        got = depth_in_range(depth, scale, 0.1, 5.0)
        assert got.dtype == np.float32 and np.array_equal(got, want)
    assert np.array_equal(depth_in_range(raw, 1000.0), depth_to_metres(raw, 1000.0))  # no range given
    with pytest.raises(FrameError, match="depth_scale"):
        depth_in_range(raw, 0.0)
    with pytest.raises(FrameError, match="dtype"):
        depth_in_range(raw.astype(np.int32), 1000.0)


def test_lift_grid_equals_backprojection_and_taps():
    rng = np.random.default_rng(1)
    h, w, stride = 48, 64, 4
    depth = rng.uniform(0.5, 3.0, (h, w)).astype(np.float32)
    depth[rng.uniform(size=(h, w)) < 0.3] = 0.0  # invalid pixels are skipped
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    K = np.array([[50.0, 0, 31.5], [0, 52.0, 23.5], [0, 0, 1]])
    a = 0.3
    T = np.array([[np.cos(a), -np.sin(a), 0, 1.0], [np.sin(a), np.cos(a), 0, -2.0], [0, 0, 1, 0.5], [0, 0, 0, 1]])
    v, u = lifting_grid(h, w, stride)
    index, weights = grid_taps(h, w, stride, 6, 8)
    selected, points, colors, tap_index, tap_weight = lift_grid(depth, rgb, K, T, v, u, index, weights)
    valid = np.flatnonzero(depth[v, u] > 0)
    assert np.array_equal(selected, valid) and 0 < len(valid) < len(v)
    want = transform_points(T, backproject(depth, K, v[valid], u[valid]))
    np.testing.assert_allclose(points, want, rtol=0, atol=1e-12)
    assert np.array_equal(colors, rgb[v[valid], u[valid]].astype(np.float32) / 255.0)
    assert np.array_equal(tap_index, index[valid]) and np.array_equal(tap_weight, weights[valid])
