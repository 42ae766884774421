"""The habitat-sim backend: its frame conversions always; rendering only where habitat_sim imports."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sim.config import RenderConfig
from sim.habitat_backend import (
    HabitatUnavailableError,
    habitat_available,
    habitat_camera_pose,
    habitat_glb,
    habitat_hfov_deg,
    rotation_to_quaternion,
    to_habitat_points,
)


def look_along_x(position=(1.0, 2.0, 1.2)) -> np.ndarray:
    """Our upright OpenCV camera looking along world +x: z_cam = +x, x_cam = -y, y_cam = -z."""
    T = np.eye(4)
    T[:3, :3] = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    T[:3, 3] = position
    return T


def test_camera_pose_maps_our_frames_to_habitat_conventions():
    pos, R = habitat_camera_pose(look_along_x())
    assert np.allclose(pos, to_habitat_points(np.array([[1.0, 2.0, 1.2]]))[0])
    assert np.allclose(pos, [1.0, 1.2, -2.0])  # our height (z) is habitat's y
    assert np.allclose(R @ [0, 0, -1], [1, 0, 0])  # GL cameras look down -z: along world +x, still +x
    assert np.allclose(R @ [0, 1, 0], [0, 1, 0])  # an upright camera's up is habitat's up (+y)
    assert np.isclose(np.linalg.det(R), 1.0)


def test_rotation_to_quaternion_matches_scipy_for_all_angles():
    for R in Rotation.random(200, random_state=0).as_matrix().tolist() + [np.diag([1, -1, -1]).tolist()]:
        w, x, y, z = rotation_to_quaternion(np.array(R))
        assert np.allclose(Rotation.from_quat([x, y, z, w]).as_matrix(), R, atol=1e-9)


def test_intrinsics_habitat_cannot_reproduce_are_refused():
    cfg = RenderConfig()
    K = cfg.intrinsics()
    hfov = habitat_hfov_deg(K, cfg.width, cfg.height)
    assert 30 < hfov < 150
    off = K.copy()
    off[0, 2] += 20
    with pytest.raises(ValueError, match="principal point"):
        habitat_hfov_deg(off, cfg.width, cfg.height)
    skew = K.copy()
    skew[1, 1] *= 1.2
    with pytest.raises(ValueError, match="square pixels"):
        habitat_hfov_deg(skew, cfg.width, cfg.height)


def test_habitat_glb_is_y_up(tmp_path):
    import trimesh

    from sim.scenes import generate_scene

    mesh = generate_scene(3).mesh()
    path = habitat_glb(mesh, tmp_path / "s.glb")
    loaded = trimesh.load(path, force="mesh")
    assert np.isclose(loaded.bounds[1, 1], mesh.vertices[:, 2].max(), atol=1e-4)  # the ceiling/wall top is habitat's max y
    assert np.isclose(loaded.bounds[0, 2], -mesh.vertices[:, 1].max(), atol=1e-4)


def test_renderer_without_habitat_says_so():
    if habitat_available():
        pytest.skip("habitat_sim is installed here; the unavailable path cannot be exercised")
    from sim.render import make_renderer

    with pytest.raises(HabitatUnavailableError, match="habitat_sim is not importable"):
        make_renderer(RenderConfig(width=64, height=48), backend="habitat")


@pytest.mark.skipif(not habitat_available(), reason="habitat_sim is not installed (it does not install on this "
                                                    "platform); the backend runs where it does")
def test_habitat_depth_matches_the_raycaster():
    from sim.render import make_renderer
    from sim.scenes import generate_scene

    cfg = RenderConfig(width=160, height=120)
    mesh = generate_scene(3).mesh()
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    pose = look_along_x(position=(lo[0] + 0.5, (lo[1] + hi[1]) / 2, 1.2))
    with make_renderer(cfg, backend="habitat") as hab, make_renderer(cfg, backend="raycast") as ray:
        hab.set_mesh(mesh)
        ray.set_mesh(mesh)
        a, b = hab.render(pose), ray.render(pose)
    both = (a.depth > 0) & (b.depth > 0)
    assert both.mean() > 0.5
    assert np.median(np.abs(a.depth[both] - b.depth[both])) < 0.01
    assert np.array_equal(a.instance[both], b.instance[both]) or (a.instance[both] == b.instance[both]).mean() > 0.95
