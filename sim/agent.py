"""The embodied agent: a base pose (x, y, yaw) on the floor, a camera on a mast, actions, noise.

Frames (REP-103 / REP-105): world z up; base x forward, y left, z up; the camera is an OpenCV
optical frame (x right, y down, z forward) at `camera_height`, pitched down by `camera_pitch_deg`.
Discrete actions follow habitat-lab's ObjectNav ids (0 stop, 1 move_forward, 2 turn_left,
3 turn_right); velocity commands integrate a unicycle. Every translation is checked against the
navigable grid in steps of half a cell and stops before the first non-navigable point (no
sliding), so the agent can never pass through walls. Odometry drift affects only the reported
pose; rendering uses the true pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.config import AgentConfig
from sim.navmesh import NavGrid

STOP, MOVE_FORWARD, TURN_LEFT, TURN_RIGHT = "stop", "move_forward", "turn_left", "turn_right"
ACTIONS = (STOP, MOVE_FORWARD, TURN_LEFT, TURN_RIGHT)  # index = habitat-lab action id


def action_name(action: str | int) -> str:
    """Normalises an action id or name; anything else raises ValueError."""
    if isinstance(action, (int, np.integer)) and not isinstance(action, bool) and 0 <= int(action) < len(ACTIONS):
        return ACTIONS[int(action)]
    if isinstance(action, str) and action in ACTIONS:
        return action
    raise ValueError(f"unknown action {action!r}; use one of {ACTIONS} or their ids 0-{len(ACTIONS) - 1}")


def base_to_camera(camera_height: float, pitch_deg: float) -> np.ndarray:
    """(4, 4) T_base_camera: optical axes in the base frame, pitched about the base's +y axis."""
    optical = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # columns: cam x, y, z in base
    p = math.radians(pitch_deg)
    pitch = np.array([[math.cos(p), 0.0, math.sin(p)], [0.0, 1.0, 0.0], [-math.sin(p), 0.0, math.cos(p)]])
    T = np.eye(4)
    T[:3, :3] = pitch @ optical
    T[2, 3] = camera_height
    return T


def pose_matrix(x: float, y: float, yaw: float, z: float = 0.0) -> np.ndarray:
    """(4, 4) T_world_base for a planar pose."""
    c, s = math.cos(yaw), math.sin(yaw)
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = (x, y, z)
    return T


@dataclass
class StepResult:
    collided: bool
    distance: float  # metres actually travelled


class Agent:
    """A differential-drive robot on a NavGrid."""

    def __init__(self, config: AgentConfig, grid: NavGrid) -> None:
        self.config = config
        self.grid = grid
        self.rng = np.random.default_rng(config.seed)
        self.T_base_camera = base_to_camera(config.camera_height, config.camera_pitch_deg)
        self.reset(*grid.sample_navigable(self.rng), 0.0)

    def reset(self, x: float, y: float, yaw: float) -> None:
        """Places the agent; a non-navigable position raises ValueError."""
        if not self.grid.is_navigable(np.array([[x, y]]))[0]:
            raise ValueError(f"start position ({x:.3f}, {y:.3f}) is not navigable for radius {self.config.radius} m")
        self.x, self.y, self.yaw = float(x), float(y), float(yaw)
        self.odom = np.array([self.x, self.y, self.yaw])  # reported (drifting) pose
        self.path_length = 0.0
        self.collisions = 0

    @property
    def position(self) -> np.ndarray:
        return np.array([self.x, self.y])

    def T_world_base(self) -> np.ndarray:
        return pose_matrix(self.x, self.y, self.yaw, self.grid.floor_z)

    def T_world_camera(self) -> np.ndarray:
        """True camera pose (what is rendered)."""
        return self.T_world_base() @ self.T_base_camera

    def odom_T_world_camera(self) -> np.ndarray:
        """Reported camera pose: equals the true one unless drift is configured."""
        return pose_matrix(*self.odom, self.grid.floor_z) @ self.T_base_camera

    def T_odom_base(self) -> np.ndarray:
        """Reported (odometry) base pose; the odom frame starts out equal to the world frame (REP-105)."""
        return pose_matrix(*self.odom, self.grid.floor_z)

    def T_world_odom(self) -> np.ndarray:
        """The correction a perfect localiser publishes as map -> odom: world <- base <- odom.

        Identity without drift; with drift it absorbs the odometry error, so map -> odom -> base
        is the true pose while odom -> base stays the smooth, drifting odometry.
        """
        return self.T_world_base() @ np.linalg.inv(self.T_odom_base())

    def _translate(self, distance: float) -> StepResult:
        """Moves along the heading, stopping before the first non-navigable sample."""
        direction = np.array([math.cos(self.yaw), math.sin(self.yaw)])
        n = max(1, int(math.ceil(abs(distance) / (0.5 * self.grid.cell))))
        fractions = np.arange(1, n + 1) / n  # (n,)
        samples = self.position + np.outer(fractions * distance, direction)  # (n, 2)
        ok = self.grid.is_navigable(samples)
        free = n if ok.all() else int(np.argmin(ok))  # samples before the first blocked one
        travelled = abs(distance) * free / n
        if free:
            self.x, self.y = map(float, samples[free - 1])
        self._odometry(math.copysign(travelled, distance), 0.0)
        self.path_length += travelled
        collided = free < n
        self.collisions += collided
        return StepResult(collided, travelled)

    def _rotate(self, angle: float) -> None:
        self.yaw = (self.yaw + angle + math.pi) % (2 * math.pi) - math.pi
        self._odometry(0.0, angle)

    def _odometry(self, distance: float, angle: float) -> None:
        c = self.config
        if distance:
            distance += self.rng.normal(0.0, c.drift_xy_std * abs(distance)) if c.drift_xy_std else 0.0
            self.odom[:2] += distance * np.array([math.cos(self.odom[2]), math.sin(self.odom[2])])
        if angle:
            noise = math.radians(c.drift_yaw_std_deg) * abs(angle) if c.drift_yaw_std_deg else 0.0
            self.odom[2] += angle + (self.rng.normal(0.0, noise) if noise else 0.0)
        if not (c.drift_xy_std or c.drift_yaw_std_deg):
            self.odom[:] = (self.x, self.y, self.yaw)  # exact odometry: no float drift either

    def act(self, action: str | int) -> StepResult:
        """One discrete action; `stop` does not move."""
        name = action_name(action)
        if name == MOVE_FORWARD:
            return self._translate(self.config.forward_step)
        if name in (TURN_LEFT, TURN_RIGHT):
            self._rotate(math.radians(self.config.turn_deg) * (1 if name == TURN_LEFT else -1))
        return StepResult(False, 0.0)

    def velocity(self, v: float, omega: float, dt: float, max_substep: float = 0.05) -> StepResult:
        """Unicycle command: `v` m/s forward, `omega` rad/s (positive turns left), for `dt` s."""
        if not all(map(math.isfinite, (v, omega, dt))) or dt < 0:
            raise ValueError(f"velocity command must be finite with dt >= 0, got v={v}, omega={omega}, dt={dt}")
        n = max(1, int(math.ceil(dt / max_substep)))
        h, moved, collided = dt / n, 0.0, False
        for _ in range(n):  # midpoint rule: half the turn, the step, the other half
            self._rotate(0.5 * omega * h)
            if v:
                r = self._translate(v * h)
                moved += r.distance
                collided |= r.collided
            self._rotate(0.5 * omega * h)
        return StepResult(collided, moved)

    def add_depth_noise(self, depth: np.ndarray) -> np.ndarray:
        """Gaussian noise with std depth_noise_std * z^2 (structured-light sensors); 0 stays invalid."""
        if not self.config.depth_noise_std:
            return depth
        noisy = depth + self.rng.normal(0.0, 1.0, depth.shape).astype(np.float32) * self.config.depth_noise_std * depth**2
        return np.where(depth > 0, np.maximum(noisy, 0.0), 0.0).astype(np.float32)


def greedy_action(agent: Agent, to_goal, min_progress: float = 0.02) -> str | None:
    """The discrete action that best follows the geodesic field `to_goal` (a navmesh.DistanceField).

    Looks one step ahead over every heading reachable by turning: turns towards (or steps along)
    the heading whose next collision-free step ends closest to the goal. None when no step makes
    `min_progress`, i.e. the agent is at the goal or boxed in. Used by the explorer and as the
    oracle follower (shortest-path agent) in tests.
    """
    turn = math.radians(agent.config.turn_deg)
    n = int(round(math.pi / turn))
    best, best_score = None, to_goal.at(agent.position) - min_progress
    for k in range(-n, n + 1):
        yaw = agent.yaw + k * turn
        step = agent.config.forward_step * np.array([math.cos(yaw), math.sin(yaw)])
        samples = agent.position + np.outer(np.linspace(0.1, 1.0, 6), step)  # (6, 2) along the step
        if not agent.grid.is_navigable(samples).all():
            continue
        score = to_goal.at(samples[-1]) + 0.001 * abs(k)  # ties go to the smaller turn
        if score < best_score:
            best, best_score = k, score
    if best is None:
        return None
    return MOVE_FORWARD if best == 0 else (TURN_LEFT if best > 0 else TURN_RIGHT)
