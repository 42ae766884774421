"""A renderer backend on habitat-sim, for machines that have it (`render.backend: habitat`).

habitat-sim does not install on this project's development platform (see the README), so this
backend is exercised only where `import habitat_sim` works; its tests skip otherwise. It plugs in
below `sim.simulator.Simulator` as a `Renderer`: the agent, collisions, the navigation grid,
exploration and the metrics stay ours, and habitat-sim draws RGB and depth of the same scene
mesh. Episodes, metrics and recorded data are therefore identical between backends, which is
what makes numbers from the built-in renderer and from habitat-sim comparable.

Conventions (the reason for the conversions below):
- our world is Z-up (REP-103); habitat-sim's is Y-up (glTF). A world point p maps to
  habitat as R_HW @ p with R_HW = [[1,0,0],[0,0,1],[0,-1,0]] (x stays, our z becomes habitat y).
- our cameras are OpenCV (x right, y down, z forward); habitat's are OpenGL (x right, y up, z
  backward): T_cam_gl = T_cam_cv @ diag(1, -1, -1, 1).
- habitat's pinhole camera has square pixels and a centred principal point; other intrinsics
  are refused with a clear error instead of being silently approximated.
- instance ids: a plain .glb carries no habitat semantic annotation, so ids come from casting
  the same camera rays into our own mesh with Open3D (exact, same ids as the other backends).
"""

from __future__ import annotations

import importlib.util
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from llm3d_core.messages import matrix_to_quaternion
from sim.config import RenderConfig
from sim.render.base import RenderOutput, Renderer
from sim.scenes.scene import SceneMesh

R_HW = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # our world (Z-up) -> habitat (Y-up)
CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes -> OpenGL camera axes


class HabitatUnavailableError(RuntimeError):
    """habitat_sim cannot be imported here."""


def habitat_available() -> bool:
    return importlib.util.find_spec("habitat_sim") is not None


def to_habitat_points(points: np.ndarray) -> np.ndarray:
    """(N, 3) points of our Z-up world in habitat's Y-up world."""
    return np.asarray(points, dtype=np.float64) @ R_HW.T


def habitat_camera_pose(T_world_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,), rotation (3, 3)) of an OpenGL camera in habitat's world for our OpenCV pose."""
    T = np.eye(4)
    T[:3, :3] = R_HW
    T_h = T @ np.asarray(T_world_camera, dtype=np.float64) @ CV_TO_GL  # (4, 4)
    return T_h[:3, 3].copy(), T_h[:3, :3].copy()


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(w, x, y, z) unit quaternion of a rotation matrix, w >= 0 (habitat-sim's order;
    llm3d_core.messages.matrix_to_quaternion gives ROS's (x, y, z, w))."""
    x, y, z, w = matrix_to_quaternion(R)
    return np.array([w, x, y, z])


def habitat_hfov_deg(K: np.ndarray, width: int, height: int) -> float:
    """Horizontal field of view of K; raises ValueError when habitat's camera cannot reproduce K."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if abs(fx - fy) > 1e-3 * fx:
        raise ValueError(f"habitat-sim renders square pixels only; got fx={fx:.3f}, fy={fy:.3f}")
    if abs(cx - (width - 1) / 2) > 0.5 or abs(cy - (height - 1) / 2) > 0.5:
        raise ValueError(f"habitat-sim renders a centred principal point only; got ({cx:.1f}, {cy:.1f}) for "
                         f"{width}x{height}")
    return math.degrees(2.0 * math.atan(width / (2.0 * fx)))


def habitat_glb(mesh: SceneMesh, path: Path) -> Path:
    """Writes `mesh` as a Y-up .glb with per-face colours (habitat-sim loads it as the stage)."""
    import trimesh

    verts = to_habitat_points(mesh.vertices)
    tm = trimesh.Trimesh(verts, mesh.faces, face_colors=np.c_[mesh.face_colors, np.full(len(mesh.faces), 255)],
                         process=False)
    path.write_bytes(trimesh.Scene(tm).export(file_type="glb"))
    return path


class HabitatRenderer(Renderer):
    """RGB and depth from habitat-sim, instance ids by raycasting our mesh (see the module docstring)."""

    name = "habitat"

    def __init__(self, config: RenderConfig, gpu_device_id: int = 0) -> None:
        if not habitat_available():
            raise HabitatUnavailableError("habitat_sim is not importable here; use render.backend egl or raycast")
        super().__init__(config)
        self.hfov = habitat_hfov_deg(self.K, config.width, config.height)
        self.gpu_device_id = gpu_device_id
        self._sim: Any = None
        self._ids: Any = None  # sim.render.raycast.RaycastRenderer for instance ids
        self._tmp = tempfile.TemporaryDirectory(prefix="llm3d-habitat-")

    def set_mesh(self, mesh: SceneMesh) -> None:
        import habitat_sim

        from sim.render.raycast import RaycastRenderer

        glb = habitat_glb(mesh, Path(self._tmp.name) / f"scene-{os.getpid()}.glb")
        sim_cfg = habitat_sim.SimulatorConfiguration()
        sim_cfg.scene_id = str(glb)
        sim_cfg.gpu_device_id = self.gpu_device_id
        sim_cfg.enable_physics = False
        specs = []
        for uuid, kind in (("color", habitat_sim.SensorType.COLOR), ("depth", habitat_sim.SensorType.DEPTH)):
            spec = habitat_sim.CameraSensorSpec()
            spec.uuid, spec.sensor_type = uuid, kind
            spec.resolution = [self.config.height, self.config.width]
            spec.hfov = self.hfov
            spec.near, spec.far = self.config.near, self.config.far
            spec.position = [0.0, 0.0, 0.0]  # the agent body is placed at the camera pose itself
            specs.append(spec)
        agent_cfg = habitat_sim.agent.AgentConfiguration()
        agent_cfg.sensor_specifications = specs
        cfg = habitat_sim.Configuration(sim_cfg, [agent_cfg])
        if self._sim is None:
            self._sim = habitat_sim.Simulator(cfg)
        else:
            self._sim.reconfigure(cfg)
        if self._ids is None:
            self._ids = RaycastRenderer(self.config)
        self._ids.set_mesh(mesh)

    def _render(self, K: np.ndarray, T_world_camera: np.ndarray) -> RenderOutput:
        import habitat_sim
        import quaternion  # numpy-quaternion, a habitat_sim dependency

        if self._sim is None:
            raise RuntimeError("no scene: call set_mesh() first")
        if not np.allclose(K, self.K):
            habitat_hfov_deg(K, self.config.width, self.config.height)  # same checks, clear error
            raise ValueError("the habitat backend renders with the intrinsics it was configured with")
        position, rotation = habitat_camera_pose(T_world_camera)
        state = habitat_sim.AgentState()
        state.position = position.astype(np.float32)
        state.rotation = quaternion.from_float_array(rotation_to_quaternion(rotation))
        self._sim.get_agent(0).set_state(state, reset_sensors=True)
        obs = self._sim.get_sensor_observations()
        rgb = np.ascontiguousarray(obs["color"][..., :3], dtype=np.uint8)  # (H, W, 3) from RGBA
        depth = np.asarray(obs["depth"], dtype=np.float32)  # (H, W) metres along the optical axis
        depth[(depth < self.config.near) | (depth > self.config.far) | ~np.isfinite(depth)] = 0.0
        instance = self._ids.render(T_world_camera, K).instance  # (H, W) int32
        instance = np.where(depth > 0, instance, -1).astype(np.int32)
        return RenderOutput(rgb=rgb, depth=depth, instance=instance)

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
            self._sim = None
        if self._ids is not None:
            self._ids.close()
        self._tmp.cleanup()
