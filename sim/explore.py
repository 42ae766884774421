"""Greedy nearest-frontier exploration producing a posed RGB-D trajectory.

Frontier exploration after Yamauchi (1997), "A frontier-based approach for autonomous
exploration": repeatedly drive to the nearest (geodesic) navigable cell not yet seen. "Seen"
cells are those hit by back-projected depth within `max_range` (plus the cells the robot body
has covered). Planning uses the simulator's navigable grid restricted to the agent's connected
region (an oracle map of traversability; the policy still has to *look* at every cell), and
targets the agent could not see after reaching or failing to reach them are given up.
Coverage = seen reachable navigable cells / reachable navigable cells.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from llm3d_core.geometry import RGBDFrame, backproject, pixel_grid, transform_points
from sim.agent import TURN_LEFT, greedy_action
from sim.config import ExploreConfig
from sim.simulator import Simulator, to_frame


@dataclass
class ExploreResult:
    frames: list[RGBDFrame]  # empty when keep_frames=False
    coverage: float  # share of the reachable navigable area seen
    steps: int
    path_xy: np.ndarray  # (T, 2) agent positions
    seen: np.ndarray  # (rows, cols) bool
    collisions: int


class Explorer:
    def __init__(self, sim: Simulator, config: ExploreConfig | None = None) -> None:
        if sim.agent is None or sim.grid is None:
            raise RuntimeError("Explorer needs a Simulator with a scene loaded")
        self.sim, self.config = sim, config or sim.config.explore
        grid, agent = sim.grid, sim.agent
        start = grid.world_to_cell(agent.position)[0]
        labels = grid.components()
        self.reachable = labels == labels[start[0], start[1]]
        self.seen = np.zeros(grid.shape, bool)
        self.given_up = np.zeros(grid.shape, bool)
        self._goal: tuple[int, int] | None = None
        self._to_goal = None
        self._costs = grid.planning_costs()  # keeps paths off the navigable edge, where heading errors collide
        h, w = sim.config.render.height, sim.config.render.width
        self._v, self._u = pixel_grid(h, w, max(1, min(h, w) // 120))  # ~ 120 rows of samples per frame

    def coverage(self) -> float:
        return float((self.seen & self.reachable).sum() / max(1, self.reachable.sum()))

    def _mark_seen(self, obs: dict) -> None:
        grid, agent = self.sim.grid, self.sim.agent
        z = obs["depth"][self._v, self._u]
        keep = (z > 0) & (z <= self.config.max_range)
        pts = transform_points(obs["pose_gt"], backproject(obs["depth"], obs["K"], self._v[keep], self._u[keep]))  # (N, 3)
        rc = grid.world_to_cell(pts[:, :2])
        rc = rc[grid.inside(rc)]
        self.seen[rc[:, 0], rc[:, 1]] = True
        r = int(math.ceil(agent.config.radius / grid.cell))
        c = grid.world_to_cell(agent.position)[0]
        self.seen[max(0, c[0] - r):c[0] + r + 1, max(0, c[1] - r):c[1] + r + 1] = True  # under the robot
        # Samples are sparse at grazing angles: close one-cell gaps between seen cells.
        self.seen |= ndimage.binary_closing(self.seen, structure=np.ones((3, 3)))

    def _choose_goal(self) -> bool:
        """Keeps the current goal while it is unseen, else picks the nearest unseen reachable cell."""
        grid, agent = self.sim.grid, self.sim.agent
        if self._goal is not None and not (self.seen[self._goal] or self.given_up[self._goal]):
            return True
        targets = self.reachable & ~self.seen & ~self.given_up
        if not targets.any():
            return False
        here = grid.world_to_cell(agent.position)[0]
        dist = np.where(targets, grid.distance_field(here[None], self._costs).metres, np.inf)
        goal = np.unravel_index(np.argmin(dist), dist.shape)
        if not math.isfinite(dist[goal]):
            self.given_up |= targets
            return False
        self._goal = (int(goal[0]), int(goal[1]))
        self._to_goal = grid.distance_field(np.array([self._goal]), self._costs)
        return True

    def _next_action(self) -> str | None:
        """Turns towards, or steps along, the heading whose next step gets closest to the goal.

        Looking one step ahead over all headings reachable by turning (rather than steering at a
        path point) avoids driving into corners that the 15-degree heading grid cannot follow.
        """
        agent = self.sim.agent
        while self._choose_goal():
            here = self._to_goal.at(agent.position)
            if here < 0.35:  # reached it and still could not see it (e.g. floor hidden under a table top)
                self._give_up(self._goal)
                continue
            action = greedy_action(agent, self._to_goal)
            if action is None:
                self._give_up(self._goal)
                continue
            return action
        return None

    def _give_up(self, goal: tuple[int, int], radius_m: float = 0.3) -> None:
        r = int(radius_m / self.sim.grid.cell)
        self.given_up[max(0, goal[0] - r):goal[0] + r + 1, max(0, goal[1] - r):goal[1] + r + 1] = True

    def run(self, on_frame: Callable[[RGBDFrame, int], None] | None = None, keep_frames: bool = True) -> ExploreResult:
        """Explores until `target_coverage`, no reachable unseen cell is left, or `max_steps` actions."""
        cfg, agent = self.config, self.sim.agent
        frames: list[RGBDFrame] = []
        path = [agent.position.copy()]
        stuck = 0

        def record(obs: dict, i: int) -> None:
            self._mark_seen(obs)
            frame = to_frame(obs, i * cfg.frame_dt)
            if on_frame is not None:
                on_frame(frame, i)
            if keep_frames:
                frames.append(frame)

        record(self.sim.observe(), 0)
        spins = int(round(360.0 / agent.config.turn_deg)) if cfg.spin_at_start else 0
        step = 0
        while step < cfg.max_steps and self.coverage() < cfg.target_coverage:
            action = TURN_LEFT if step < spins else self._next_action()
            if action is None:
                break
            obs = self.sim.step(action)
            step += 1
            path.append(agent.position.copy())
            record(obs, step)
            stuck = stuck + 1 if obs["collided"] else 0
            if stuck >= 3 and self._goal is not None:  # should not happen after the look-ahead; never loop on it
                self._give_up(self._goal)
                stuck = 0
        return ExploreResult(frames, self.coverage(), step, np.array(path), self.seen.copy(), agent.collisions)


def explore(sim: Simulator, config: ExploreConfig | None = None, on_frame: Callable[[RGBDFrame, int], None] | None = None,
            keep_frames: bool = True) -> ExploreResult:
    """Runs the frontier explorer on the simulator's current scene from the agent's pose."""
    return Explorer(sim, config).run(on_frame, keep_frames)
