"""TsdfVolume.render_depth against analytic planes, without encoders (fast).

render_depth ray casts the TSDF's marching-cubes surface (Embree) instead of Open3D's
VoxelBlockGrid.ray_cast, which crashed (SIGSEGV) when its fragment buffer had to grow on a dirty heap,
rendered a partial image whenever it grew, and reads outside its range map at image sizes that are not
multiples of 8 (wrong last rows, endless loops).
"""

import numpy as np
import pytest

from llm3d_core.mapping.tsdf import TsdfConfig, TsdfVolume

H, W = 96, 128
K = np.array([[100.0, 0, W / 2], [0, 100.0, H / 2], [0, 0, 1]])
BLACK = np.zeros((H, W, 3), np.uint8)


def volume() -> TsdfVolume:
    return TsdfVolume(TsdfConfig(voxel_size=0.02, block_count=2000))


def pose(yaw: float = 0.0, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    T = np.eye(4)
    T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    T[:3, 3] = t
    return T


def camera_rays(K: np.ndarray, T: np.ndarray, w: int, h: int) -> np.ndarray:
    """(h, w, 3) world directions through pixel centres (u, v) with camera z = 1."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ T[:3, :3].T


def tilted_plane_volume(slope: float = 0.3, z0: float = 2.0) -> TsdfVolume:
    """The plane z = z0 + slope * x fused from the identity pose."""
    vol = volume()
    dirs = camera_rays(K, np.eye(4), W, H)
    vol.integrate((z0 / (1 - slope * dirs[..., 0])).astype(np.float32), BLACK, K, np.eye(4))
    return vol


def test_depth_is_camera_z_of_the_plane_from_a_moved_turned_camera():
    vol = tilted_plane_volume()
    T = pose(0.2, (-0.3, 0.1, 0.2))
    rendered = vol.render_depth(K, T, W, H)
    dirs, o = camera_rays(K, T, W, H), T[:3, 3]
    expected = (2.0 - o[2] + 0.3 * o[0]) / (dirs[..., 2] - 0.3 * dirs[..., 0])  # ray parameter = camera z
    hit = rendered > 0
    assert hit.mean() > 0.8
    # Open3D fuses pixel u into [u, u + 1) (floor), half a pixel off the OpenCV centre the renderer
    # uses: on this slope (6 mm of depth per pixel) that is 3 mm, well under a voxel.
    assert np.median(np.abs(rendered[hit] - expected[hit])) < 0.005
    assert np.abs(rendered[hit] - expected[hit]).max() < 0.02


def test_fronto_parallel_plane_renders_exactly_and_deterministically():
    vol = volume()
    vol.integrate(np.full((H, W), 2.01, np.float32), BLACK, K, np.eye(4))
    first = vol.render_depth(K, np.eye(4), W, H)
    assert (first > 0).mean() > 0.9
    assert np.allclose(first[first > 0], 2.01, atol=1e-4)
    assert np.array_equal(first, vol.render_depth(K, np.eye(4), W, H))


@pytest.mark.parametrize("w, h", [(643, 480), (645, 485), (101, 77)])
def test_sizes_that_are_not_multiples_of_8_render_every_row(w, h):
    vol = volume()
    vol.integrate(np.full((H, W), 2.01, np.float32), BLACK, K, np.eye(4))
    # Zoomed in 1.5x, the view lies inside the fused part of the plane: every pixel sees it.
    K_big = np.array([[150.0 * w / W, 0, w / 2], [0, 150.0 * h / H, h / 2], [0, 0, 1]])
    rendered = vol.render_depth(K_big, np.eye(4), w, h)
    assert rendered.shape == (h, w) and rendered.dtype == np.float32
    assert np.allclose(rendered, 2.01, atol=1e-4)


def test_depth_range_empty_volume_and_back_faces_render_nothing():
    vol = volume()
    assert not vol.render_depth(K, np.eye(4), W, H).any()
    vol.integrate(np.full((H, W), 2.01, np.float32), BLACK, K, np.eye(4))
    assert not vol.render_depth(K, pose(t=(0, 0, 1.95)), W, H).any()  # 6 cm away: nearer than depth_min
    assert not vol.render_depth(K, pose(t=(0, 0, -3.5)), W, H).any()  # 5.51 m away: beyond depth_max
    assert not vol.render_depth(K, pose(np.pi, (0, 0, 4.0)), W, H).any()  # the plane seen from behind
    # A surface nearer than depth_min does not hide farther ones (a TSDF ray march starts there too).
    vol.integrate(np.full((H, W), 0.9, np.float32), BLACK, K, pose(t=(0, 0, -1.0)))  # a plane at z = -0.1
    behind_it = vol.render_depth(K, pose(t=(0, 0, -0.15)), W, H)  # 5 cm in front of the camera
    # From 2.16 m the view is wider than the fused plane (0.9 of its width, so ~0.8 of the pixels).
    assert (behind_it > 0).mean() > 0.75 and np.allclose(behind_it[behind_it > 0], 2.16, atol=1e-4)


def test_weight_threshold_counts_fused_frames():
    vol = volume()
    plane = np.full((H, W), 2.01, np.float32)
    vol.integrate(plane, BLACK, K, np.eye(4))
    assert (vol.render_depth(K, np.eye(4), W, H, weight_threshold=1.0) > 0).mean() > 0.9
    assert not vol.render_depth(K, np.eye(4), W, H, weight_threshold=2.0).any()
    vol.integrate(plane, BLACK, K, np.eye(4))
    assert (vol.render_depth(K, np.eye(4), W, H, weight_threshold=2.0) > 0).mean() > 0.9


def test_surface_is_cached_until_the_volume_changes(tmp_path):
    vol = volume()
    vol.integrate(np.full((H, W), 2.01, np.float32), BLACK, K, np.eye(4))
    scene = vol._scene(1.0)
    assert vol._scene(1.0) is scene
    vol.render_depth(K, pose(0.1), W, H)
    assert vol._scene(1.0) is scene
    vol.save(tmp_path / "tsdf.npz")
    vol.integrate(np.full((H, W), 1.5, np.float32), BLACK, K, np.eye(4))  # a nearer wall
    assert np.allclose(vol.render_depth(K, np.eye(4), W, H)[H // 2, W // 2], 1.5, atol=1e-3)
    vol.load(tmp_path / "tsdf.npz")
    assert np.allclose(vol.render_depth(K, np.eye(4), W, H)[H // 2, W // 2], 2.01, atol=1e-3)
    vol.reset()
    assert not vol.render_depth(K, np.eye(4), W, H).any()
