"""The simulator core: one scene, its navigation grid, a renderer and an agent.

`Simulator.observe()` returns the observation dict every consumer uses (SimEnv, the explorer,
the CLI, the ROS bridge):
    rgb (H, W, 3) uint8; depth (H, W) float32 metres (0 = invalid); instance (H, W) int32
    (-1 no hit, 0 structure, >= 1 object ids); pose (4, 4) reported T_world_camera (with odometry
    drift if configured); pose_gt (4, 4) true T_world_camera; K (3, 3); collided bool.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llm3d_core.geometry import RGBDFrame
from sim.agent import Agent, StepResult
from sim.config import SimConfig
from sim.navmesh import NavGrid, build_navgrid
from sim.render import Renderer, make_renderer
from sim.scenes.generator import generate_scene
from sim.scenes.scene import Scene, load_scene


def resolve_scene(scene: Scene | int | str | Path, config: SimConfig) -> Scene:
    """A Scene from a Scene, a seed, or a path (annotation .json or any mesh file)."""
    if isinstance(scene, Scene):
        return scene
    if isinstance(scene, (int, np.integer)) and not isinstance(scene, bool):
        return generate_scene(int(scene), config.scene)
    if isinstance(scene, (str, Path)):
        return load_scene(scene)
    raise ValueError(f"scene must be a Scene, a seed or a path, got {scene!r}")


class Simulator:
    """Holds the renderer across scenes (an EGL context is costly to create)."""

    def __init__(self, config: SimConfig | None = None, renderer: Renderer | None = None) -> None:
        self.config = config or SimConfig()
        self.renderer = renderer or make_renderer(self.config.render)
        self.scene: Scene | None = None
        self.grid: NavGrid | None = None
        self.agent: Agent | None = None
        self.last_step = StepResult(False, 0.0)

    @property
    def K(self) -> np.ndarray:
        return self.renderer.K

    def load(self, scene: Scene | int | str | Path) -> Scene:
        """Loads a scene and places the agent at a random navigable cell of its largest region."""
        self.scene = resolve_scene(scene, self.config)
        mesh = self.scene.mesh()
        self.renderer.set_mesh(mesh)
        self.grid = build_navgrid(mesh, self.config.agent)
        self.agent = Agent(self.config.agent, self.grid)
        self.last_step = StepResult(False, 0.0)
        return self.scene

    def _require(self) -> Agent:
        if self.agent is None:
            raise RuntimeError("no scene loaded: call load(seed | scene | path) first")
        return self.agent

    def observe(self) -> dict:
        agent = self._require()
        pose_gt = agent.T_world_camera()
        out = self.renderer.render(pose_gt)
        return {"rgb": out.rgb, "depth": agent.add_depth_noise(out.depth), "instance": out.instance,
                "pose": agent.odom_T_world_camera(), "pose_gt": pose_gt, "K": self.K.copy(),
                "collided": self.last_step.collided}

    def step(self, action: str | int) -> dict:
        self.last_step = self._require().act(action)
        return self.observe()

    def velocity(self, v: float, omega: float, dt: float) -> dict:
        self.last_step = self._require().velocity(v, omega, dt)
        return self.observe()

    def close(self) -> None:
        self.renderer.close()


def to_frame(obs: dict, timestamp: float) -> RGBDFrame:
    """An observation as llm3d_core's RGBDFrame (float depth in metres, instance ids set)."""
    return RGBDFrame(rgb=obs["rgb"], depth=obs["depth"], K=obs["K"], T_world_camera=obs["pose"], timestamp=timestamp,
                     instance_ids=obs["instance"])
