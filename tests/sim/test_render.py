"""Renderers: EGL depth matches the raycaster, ids match annotations, depth lands on surfaces."""

import math

import numpy as np
import open3d as o3d
import pytest

from llm3d_core.geometry import backproject, pixel_grid, transform_points
from sim.agent import base_to_camera, pose_matrix
from sim.config import RenderConfig
from sim.navmesh import build_navgrid
from sim.config import AgentConfig
from sim.render import NO_HIT, make_renderer
from sim.render.egl import EglRenderer, opencv_projection
from tests.sim.conftest import SMALL


@pytest.fixture(scope="module")
def views(scene):
    """Both renderers' outputs at 6 random navigable poses, some pitched down."""
    grid = build_navgrid(scene.mesh(), AgentConfig())
    rng = np.random.default_rng(1)
    poses = [pose_matrix(*grid.sample_navigable(rng), float(rng.uniform(-math.pi, math.pi)))
             @ base_to_camera(1.0, float(pitch)) for pitch in (0, 0, 20, 20, 45, -10)]
    egl, ray = make_renderer(SMALL, "egl"), make_renderer(SMALL, "raycast")
    egl.set_mesh(scene.mesh())
    ray.set_mesh(scene.mesh())
    out = [(T, egl.render(T), ray.render(T)) for T in poses]
    egl.close()
    return out


def test_egl_depth_matches_raycaster(views):
    agree = []
    for _, a, b in views:
        assert a.rgb.dtype == np.uint8 and a.depth.dtype == np.float32 and a.instance.dtype == np.int32
        both = (a.depth > 0) & (b.depth > 0)
        assert both.mean() > 0.5
        assert np.median(np.abs(a.depth - b.depth)[both]) < 1e-3
        assert np.array_equal(a.depth > 0, a.instance != NO_HIT)
        agree.append((a.instance == b.instance).mean())
        assert np.abs(a.rgb.astype(int) - b.rgb.astype(int)).mean() < 3.0  # same shading, edges may differ
    assert np.mean(agree) > 0.98  # only silhouette pixels may disagree


def test_instance_ids_match_annotations(views, scene):
    K = SMALL.intrinsics()
    seen = set()
    for T, a, _ in views:
        v, u = np.nonzero(a.instance > 0)
        pts = transform_points(T, backproject(a.depth, K, v, u))  # (N, 3) world
        ids = a.instance[v, u]
        for inst_id in np.unique(ids):
            inst = scene.instance(int(inst_id))
            p = pts[ids == inst_id]
            inside = np.all((p >= inst.box_min - 0.01) & (p <= inst.box_max + 0.01), axis=1)
            assert inside.mean() > 0.99, inst.category
            seen.add(int(inst_id))
    assert len(seen) >= 3


def test_backprojected_depth_lands_on_mesh_surfaces(views, scene):
    mesh = scene.mesh()
    rs = o3d.t.geometry.RaycastingScene()
    rs.add_triangles(o3d.core.Tensor(mesh.vertices), o3d.core.Tensor(mesh.faces.astype(np.uint32)))
    K = SMALL.intrinsics()
    v, u = pixel_grid(SMALL.height, SMALL.width, 4)
    for T, a, _ in views:
        valid = a.depth[v, u] > 0
        pts = transform_points(T, backproject(a.depth, K, v[valid], u[valid])).astype(np.float32)
        dist = rs.compute_distance(o3d.core.Tensor(pts)).numpy()
        assert np.percentile(dist, 99) < 2e-3 and np.median(dist) < 1e-4


def test_opencv_projection_maps_pixel_centres():
    K = RenderConfig().intrinsics()
    P = opencv_projection(K, 640, 480, 0.1, 10.0)
    for u, v, z in ((0, 0, 1.0), (639, 479, 3.0), (319.5, 239.5, 9.0)):
        x, y = (u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z
        clip = P @ [x, y, z, 1.0]
        ndc = clip[:3] / clip[3]
        assert np.allclose([(ndc[0] + 1) * 320 - 0.5, (ndc[1] + 1) * 240 - 0.5], [u, v], atol=1e-9)
    assert np.isclose((P @ [0, 0, 0.1, 1])[2] / 0.1, -1) and np.isclose((P @ [0, 0, 10, 1])[2] / 10, 1)


def test_backend_selection_and_config_errors(scene):
    egl = make_renderer(SMALL, "auto")
    assert isinstance(egl, EglRenderer)
    egl.close()
    assert make_renderer(SMALL, "raycast").name == "raycast"
    with pytest.raises(ValueError, match="backend"):
        make_renderer(SMALL, "vulkan")
    with pytest.raises(ValueError, match="RenderConfig.backend"):
        RenderConfig(backend="opengl")
    with pytest.raises(ValueError, match="RenderConfig.fx"):
        RenderConfig(fx=-1.0)
    K = RenderConfig(width=640, height=480, hfov_deg=90.0).intrinsics()
    assert np.isclose(K[0, 0], 320.0) and np.isclose(K[0, 2], 319.5)
    ray = make_renderer(SMALL, "raycast")
    with pytest.raises(RuntimeError, match="set_mesh"):
        ray.render(np.eye(4))
    ray.set_mesh(scene.mesh())
    with pytest.raises(ValueError, match="T_world_camera"):
        ray.render(np.ones((4, 4)))
