"""Validated configs of the simulator's components, one dataclass each (style rule 3).

They are read from the `llm3d_sim_bridge: ros__parameters: sim:` section of launch/llm3d.yaml
through `llm3d_core.config.config_from_dict`; every `__post_init__` raises ValueError naming the
field and the bad value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from llm3d_core.config import DEFAULT_CONFIG, config_from_dict, load_yaml, node_parameters
from llm3d_core.robot_body import RobotBodyConfig

SIM_NODE = "llm3d_sim_bridge"  # YAML section that holds the `sim:` parameters
BACKENDS = ("auto", "egl", "raycast", "habitat")  # habitat: sim.habitat_backend, where habitat_sim imports


def _check(ok: bool, name: str, value: object, what: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {what}, got {value!r}")


@dataclass
class SceneConfig:
    """Procedural scene generation (sim.scenes.generator)."""

    min_objects: int = 15  # fewest object instances per scene
    max_objects: int = 40  # most object instances per scene
    min_rooms: int = 1  # rooms are laid out side by side, joined by doorways
    max_rooms: int = 3
    room_min_size: float = 3.5  # metres, shortest room side
    room_max_size: float = 6.0  # metres, longest room side
    wall_height: float = 2.6  # metres
    wall_thickness: float = 0.12  # metres
    door_width: float = 1.0  # metres, doorway opening in interior walls
    door_height: float = 2.1  # metres
    furniture_gap: float = 0.55  # metres kept free between floor furniture, so a robot can pass
    categories: list[str] = field(default_factory=list)  # allowed categories; empty: the whole catalog

    def __post_init__(self) -> None:
        _check(1 <= self.min_objects <= self.max_objects <= 60, "SceneConfig.min_objects/max_objects",
               (self.min_objects, self.max_objects), "1 <= min_objects <= max_objects <= 60")
        _check(1 <= self.min_rooms <= self.max_rooms <= 4, "SceneConfig.min_rooms/max_rooms",
               (self.min_rooms, self.max_rooms), "1 <= min_rooms <= max_rooms <= 4")
        _check(2.0 <= self.room_min_size <= self.room_max_size <= 20.0, "SceneConfig.room_min_size/room_max_size",
               (self.room_min_size, self.room_max_size), "2 <= room_min_size <= room_max_size <= 20 metres")
        _check(2.2 <= self.wall_height <= 5.0, "SceneConfig.wall_height", self.wall_height, "in [2.2, 5] metres")
        _check(0.02 <= self.wall_thickness <= 0.5, "SceneConfig.wall_thickness", self.wall_thickness,
               "in [0.02, 0.5] metres")
        _check(0.6 <= self.door_width <= 2.0, "SceneConfig.door_width", self.door_width, "in [0.6, 2] metres")
        _check(1.8 <= self.door_height < self.wall_height, "SceneConfig.door_height", self.door_height,
               "in [1.8, wall_height) metres")
        _check(0.0 <= self.furniture_gap <= 2.0, "SceneConfig.furniture_gap", self.furniture_gap, "in [0, 2] metres")
        from sim.scenes.catalog import CATALOG  # lazy: the catalog imports trimesh

        unknown = [c for c in self.categories if c not in CATALOG]
        if unknown:
            raise ValueError(f"SceneConfig.categories: unknown category {unknown[0]!r}; known: {', '.join(sorted(CATALOG))}")


@dataclass
class RenderConfig:
    """Camera intrinsics and renderer choice (sim.render)."""

    width: int = 640  # pixels
    height: int = 480  # pixels
    fx: float = 525.0  # focal lengths in pixels (ignored when hfov_deg is set)
    fy: float = 525.0
    cx: float | None = None  # principal point in pixels; None: the image centre (width - 1) / 2
    cy: float | None = None
    hfov_deg: float | None = None  # horizontal field of view; when set, fx = fy = (width / 2) / tan(hfov / 2)
    near: float = 0.05  # metres: nothing closer is rendered
    far: float = 20.0  # metres: nothing farther is rendered (depth 0 there)
    backend: str = "auto"  # auto (EGL if a context opens, else raycast) | egl | raycast | habitat (habitat-sim)
    ambient: float = 0.35  # share of the albedo lit regardless of the light direction
    light_dir: list[float] = field(default_factory=lambda: [0.35, 0.55, 1.0])  # world direction towards the light

    def __post_init__(self) -> None:
        _check(8 <= self.width <= 8192, "RenderConfig.width", self.width, "in [8, 8192]")
        _check(8 <= self.height <= 8192, "RenderConfig.height", self.height, "in [8, 8192]")
        _check(self.fx > 0 and math.isfinite(self.fx), "RenderConfig.fx", self.fx, "a finite number > 0")
        _check(self.fy > 0 and math.isfinite(self.fy), "RenderConfig.fy", self.fy, "a finite number > 0")
        if self.hfov_deg is not None:
            _check(1.0 <= self.hfov_deg <= 170.0, "RenderConfig.hfov_deg", self.hfov_deg, "in [1, 170] degrees")
        _check(0 < self.near < self.far, "RenderConfig.near/far", (self.near, self.far), "0 < near < far")
        _check(self.backend in BACKENDS, "RenderConfig.backend", self.backend, f"one of {BACKENDS}")
        _check(0.0 <= self.ambient <= 1.0, "RenderConfig.ambient", self.ambient, "in [0, 1]")
        _check(len(self.light_dir) == 3 and any(abs(v) > 0 for v in self.light_dir), "RenderConfig.light_dir",
               self.light_dir, "a non-zero 3-vector")

    def intrinsics(self):
        """The 3x3 pinhole matrix K (OpenCV convention, pixel centres at integer coordinates)."""
        import numpy as np

        fx, fy = self.fx, self.fy
        if self.hfov_deg is not None:
            fx = fy = (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)
        cx = (self.width - 1) / 2.0 if self.cx is None else self.cx
        cy = (self.height - 1) / 2.0 if self.cy is None else self.cy
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


@dataclass
class AgentConfig:
    """The embodied agent, its camera, its actions and its noise (sim.agent, sim.navmesh)."""

    radius: float = 0.18  # metres: cells closer than this to an obstacle are not navigable
    height: float = 1.2  # metres: geometry between obstacle_min_z and this height blocks the robot
    obstacle_min_z: float = 0.1  # metres above the floor: lower geometry (rugs, thresholds) is driven over
    camera_height: float = 1.0  # metres above the floor
    camera_pitch_deg: float = 0.0  # positive looks down (REP-103: rotation about the base's +y axis)
    forward_step: float = 0.25  # metres per move_forward
    turn_deg: float = 15.0  # degrees per turn_left / turn_right
    grid_cell: float = 0.05  # metres: occupancy / navigation grid resolution
    depth_noise_std: float = 0.0  # metres at 1 m; the std grows with depth squared (structured-light sensors)
    drift_xy_std: float = 0.0  # metres of odometry noise per metre travelled (reported pose only)
    drift_yaw_std_deg: float = 0.0  # degrees of odometry noise per radian turned (reported pose only)
    seed: int = 0  # seeds the noise generator (and start poses when an episode does not give one)

    def __post_init__(self) -> None:
        _check(0.05 <= self.radius <= 1.0, "AgentConfig.radius", self.radius, "in [0.05, 1] metres")
        _check(0.0 <= self.obstacle_min_z < self.height <= 3.0, "AgentConfig.obstacle_min_z/height",
               (self.obstacle_min_z, self.height), "0 <= obstacle_min_z < height <= 3 metres")
        _check(0.05 <= self.camera_height <= 3.0, "AgentConfig.camera_height", self.camera_height, "in [0.05, 3] metres")
        _check(-90.0 <= self.camera_pitch_deg <= 90.0, "AgentConfig.camera_pitch_deg", self.camera_pitch_deg,
               "in [-90, 90] degrees")
        _check(0.01 <= self.forward_step <= 2.0, "AgentConfig.forward_step", self.forward_step, "in [0.01, 2] metres")
        _check(0.5 <= self.turn_deg <= 180.0, "AgentConfig.turn_deg", self.turn_deg, "in [0.5, 180] degrees")
        _check(0.01 <= self.grid_cell <= 0.5, "AgentConfig.grid_cell", self.grid_cell, "in [0.01, 0.5] metres")
        for name in ("depth_noise_std", "drift_xy_std", "drift_yaw_std_deg"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0 if name != "drift_yaw_std_deg" else 0.0 <= value <= 45.0,
                   f"AgentConfig.{name}", value, ">= 0 and small")
        _check(self.seed >= 0, "AgentConfig.seed", self.seed, ">= 0")

    def body(self) -> RobotBodyConfig:
        """The simulated robot's body in the terms goal selection uses (habitat-sim's names here)."""
        return RobotBodyConfig(robot_radius=self.radius, robot_height=self.height, clearance=self.obstacle_min_z)


@dataclass
class ExploreConfig:
    """The coverage-frontier exploration policy (sim.explore)."""

    max_steps: int = 400  # actions before giving up
    target_coverage: float = 0.9  # stop once this share of the reachable navigable area was seen
    max_range: float = 4.0  # metres: depth beyond this does not count as seen
    spin_at_start: bool = True  # turn a full circle first, so the first frontier is chosen with a view
    frame_dt: float = 0.1  # seconds between frame timestamps

    def __post_init__(self) -> None:
        _check(1 <= self.max_steps <= 100000, "ExploreConfig.max_steps", self.max_steps, "in [1, 100000]")
        _check(0.0 < self.target_coverage <= 1.0, "ExploreConfig.target_coverage", self.target_coverage, "in (0, 1]")
        _check(0.2 <= self.max_range <= 50.0, "ExploreConfig.max_range", self.max_range, "in [0.2, 50] metres")
        _check(self.frame_dt > 0, "ExploreConfig.frame_dt", self.frame_dt, "> 0 seconds")


@dataclass
class EnvConfig:
    """Episodes and measures of the Habitat-shaped environment (sim.env)."""

    max_episode_steps: int = 500  # the episode ends after this many actions
    success_distance: float = 0.2  # metres: Success needs DistanceToGoal <= this when `stop` is called
    view_radius: float = 1.0  # metres: navigable cells this close to a goal box are its view points
    split: str = "train"  # seed split that `reset()` without a scene draws from

    def __post_init__(self) -> None:
        _check(1 <= self.max_episode_steps <= 100000, "EnvConfig.max_episode_steps", self.max_episode_steps,
               "in [1, 100000]")
        _check(0.0 < self.success_distance <= 5.0, "EnvConfig.success_distance", self.success_distance,
               "in (0, 5] metres")
        _check(0.1 <= self.view_radius <= 5.0, "EnvConfig.view_radius", self.view_radius, "in [0.1, 5] metres")
        _check(self.split in ("train", "val", "test"), "EnvConfig.split", self.split, "train, val or test")


@dataclass
class SimConfig:
    """Everything the simulator needs; the `sim:` mapping of the YAML section."""

    scene: SceneConfig = field(default_factory=SceneConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    explore: ExploreConfig = field(default_factory=ExploreConfig)
    env: EnvConfig = field(default_factory=EnvConfig)

    def __post_init__(self) -> None:
        _check(self.agent.camera_height < self.scene.wall_height, "AgentConfig.camera_height",
               self.agent.camera_height, f"below the wall height {self.scene.wall_height}")


def load_sim_config(path: str | Path | None = None) -> SimConfig:
    """The `sim:` parameters of the `llm3d_sim_bridge` section of a YAML file (default: launch/llm3d.yaml)."""
    params = node_parameters(load_yaml(path or DEFAULT_CONFIG), SIM_NODE).get("sim", {}) or {}
    return config_from_dict(SimConfig, params, f"{SIM_NODE}.sim")
