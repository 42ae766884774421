"""Navigation goals from a map: a reachable pose in free space, facing a grounded target.

Language navigation in 3D-LLM (Hong et al. 2023, section 4, "3D-assisted dialog / navigation")
and UniVLG (Jain et al. 2025) ends at a grounded box; a robot needs a pose it can drive to. This
module turns the box into one: a top-down occupancy grid of the map's points (`occupancy.py`),
obstacles inflated by the robot radius, then the free cell connected to the robot that lies
closest to a preferred stand-off distance from the box, with the heading pointing at the box
centre. `NavigationMap.validate()` is the check every goal passes before it leaves the node.

No rclpy here: the reasoner node calls these functions and publishes the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llm3d_core.mapping.occupancy import FREE, OCCUPIED, UNKNOWN, OccupancyGrid, occupancy_from_points
from llm3d_core.robot_body import RobotBodyConfig


class GoalError(ValueError):
    """No valid goal exists, or a proposed goal is invalid; the message says why."""


@dataclass
class GoalConfig(RobotBodyConfig):
    """How goals are chosen on the map's occupancy grid, for the robot's body (RobotBodyConfig's
    robot_radius, robot_height, clearance).

    Fields:
        floor_z: height of the floor in the map frame (metres; the map frame is z-up, as a
            robot's `map` frame is in REP 105).
        cell: grid cell size (metres).
        floor_fill: observed floor is dilated by this much (metres). The map samples the floor
            sparsely (one feature per pixel stride), which would leave holes between samples;
            obstacles, inflated, always win over filled floor.
        standoff: preferred distance (metres) between the goal and the target's footprint.
    """

    floor_z: float = 0.0
    cell: float = 0.05
    floor_fill: float = 0.15
    standoff: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not math.isfinite(self.floor_z):
            raise ValueError(f"floor_z must be finite, got {self.floor_z!r}")
        for name in ("cell", "standoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not (math.isfinite(self.floor_fill) and self.floor_fill >= 0):
            raise ValueError(f"floor_fill must be a finite number >= 0, got {self.floor_fill!r}")


@dataclass
class GoalPose:
    """A goal in the map frame: position, heading (radians, from +x), and its distance to the target."""

    x: float
    y: float
    yaw: float
    target_distance: float  # metres from the goal to the target's footprint


def box_footprint_distance(xy: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Top-down distance (N,) from points (N, 2) to the rectangle of box (6,) = min xyz, max xyz (0 inside)."""
    xy = np.atleast_2d(np.asarray(xy, dtype=np.float64))
    box = np.asarray(box, dtype=np.float64)
    d = np.maximum(np.maximum(box[:2] - xy, xy - box[3:5]), 0.0)  # (N, 2)
    return np.linalg.norm(d, axis=1)


class NavigationMap:
    """The map's free space for goal selection and validation (built once per map version)."""

    def __init__(self, grid: OccupancyGrid, config: GoalConfig, visited_xy: np.ndarray | None = None) -> None:
        """visited_xy (M, 2): where the robot has been (the mapper's trajectory). The floor under the
        robot's footprint there is free even where the camera never saw it: a camera at robot height
        looking ahead does not see the floor within a few metres of the robot, which would otherwise
        leave the driven corridor, and every goal near it, "unknown"."""
        from scipy import ndimage

        self.grid = grid
        self.config = config
        radius_cells = max(1, int(math.ceil(config.robot_radius / config.cell)))
        obstacle = grid.data == OCCUPIED  # (rows, cols)
        blocked = ndimage.binary_dilation(obstacle, structure=_disk(radius_cells)) if obstacle.any() else obstacle
        floor = grid.data == FREE
        fill = int(round(config.floor_fill / config.cell))
        if fill > 0 and floor.any():
            floor = ndimage.binary_dilation(floor, structure=_disk(fill))
        self.free = floor & ~blocked  # (rows, cols)
        self.observed_free = self.free.copy()  # free floor the camera saw (without the driven path)
        self._open = floor & ~obstacle  # floor (filled) and, below, the driven footprint; not inflated
        if visited_xy is not None and len(visited_xy):
            rc = grid.world_to_cell(_densify(np.asarray(visited_xy, dtype=np.float64).reshape(-1, 2), config.cell))
            rc = rc[grid.inside(rc)]
            path = np.zeros_like(floor)
            path[rc[:, 0], rc[:, 1]] = True
            footprint = ndimage.binary_dilation(path, structure=_disk(radius_cells)) if path.any() else path
            # Around the path the inflated obstacles still win; on the path itself only observed
            # obstacles do (the robot stood there), which keeps the driven corridor connected.
            self.free |= (footprint & ~blocked) | (path & ~obstacle)
            self._open |= footprint & ~obstacle
        lo = grid.origin
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = self.lo + np.array(grid.data.shape[::-1], dtype=np.float64) * grid.cell

    @classmethod
    def from_points(cls, points: np.ndarray, config: GoalConfig,
                    visited_xy: np.ndarray | None = None) -> "NavigationMap":
        """From (N, 3) map points, z up, and optionally the robot's driven path (M, 2)."""
        # The grid covers the path too: the floor right under the robot may hold no point.
        grid = occupancy_from_points(points, config.floor_z, config.robot_height, config.cell, config.clearance,
                                     extent_xy=visited_xy)
        return cls(grid, config, visited_xy)

    def nav2_values(self) -> np.ndarray:
        """(rows, cols) int8 in nav_msgs/OccupancyGrid values: 100 observed obstacles, 0 free floor
        (seen, filled between samples, or driven over), -1 unknown; row = y, col = x from grid.origin.
        Not inflated by robot_radius: Nav2's costmaps inflate with their own footprint. Every cell
        goals are chosen in (`free`) is 0 here."""
        values = np.full(self.grid.data.shape, UNKNOWN, np.int8)
        values[self._open] = FREE
        values[self.grid.data == OCCUPIED] = OCCUPIED
        return values

    @property
    def free_cells(self) -> int:
        return int(self.free.sum())

    def is_free(self, x: float, y: float) -> bool:
        rc = self.grid.world_to_cell(np.array([[x, y]]))
        return bool(self.grid.inside(rc)[0] and self.free[rc[0, 0], rc[0, 1]])

    def validate(self, x: float, y: float, yaw: float) -> None:
        """Raises GoalError unless (x, y, yaw) is finite, inside the mapped bounds and in free space."""
        if not all(math.isfinite(v) for v in (x, y, yaw)):
            raise GoalError(f"goal ({x}, {y}, yaw {yaw}) is not finite")
        if not (self.lo[0] <= x < self.hi[0] and self.lo[1] <= y < self.hi[1]):
            raise GoalError(f"goal ({x:.2f}, {y:.2f}) is outside the mapped area "
                            f"x [{self.lo[0]:.2f}, {self.hi[0]:.2f}], y [{self.lo[1]:.2f}, {self.hi[1]:.2f}]")
        if not self.is_free(x, y):
            raise GoalError(f"goal ({x:.2f}, {y:.2f}) is not in observed free space "
                            f"(an obstacle within {self.config.robot_radius} m, or unmapped)")

    def reachable(self, start_xy: np.ndarray | None) -> np.ndarray:
        """Free cells (rows, cols) connected to the free cell nearest `start_xy`, or to the observed
        free floor nearest it; all free cells when None.

        The camera rarely sees the floor right around the robot, so the robot's own footprint (free
        through the driven path) can be cut off from the floor it sees a metre or two ahead by
        unobserved cells; the robot is taken to reach that floor too, as it would without a path.
        """
        from scipy import ndimage

        if start_xy is None or not self.free.any():
            return self.free
        rc = self.grid.world_to_cell(np.asarray(start_xy, dtype=np.float64).reshape(1, 2))[0]
        labels, _ = ndimage.label(self.free, structure=np.ones((3, 3), bool))
        keep = set()
        for mask in (self.free, self.observed_free):
            cells = np.argwhere(mask)  # (M, 2)
            if len(cells):
                nearest = cells[np.argmin(((cells - rc) ** 2).sum(axis=1))]
                keep.add(int(labels[nearest[0], nearest[1]]))
        return np.isin(labels, list(keep))

    def choose_goal(self, box: np.ndarray, robot_xy: np.ndarray | None = None,
                    max_distance: float | None = None) -> GoalPose:
        """The reachable free cell whose footprint distance to `box` (6,) is closest to config.standoff
        (and at most max_distance), facing the box centre. Ties go to the cell nearer the robot."""
        box = np.asarray(box, dtype=np.float64).reshape(6)
        if not np.all(np.isfinite(box)):
            raise GoalError(f"target box {box.tolist()} is not finite")
        mask = self.reachable(robot_xy)
        cells = np.argwhere(mask)  # (M, 2)
        if len(cells) == 0:
            raise GoalError("the map has no observed free floor reachable from the robot; map more of the scene")
        xy = self.grid.cell_to_world(cells)  # (M, 2)
        dist = box_footprint_distance(xy, box)  # (M,)
        limit = max_distance if max_distance is not None else np.inf
        ok = dist <= limit
        if not ok.any():
            raise GoalError(f"no reachable free floor within {limit:.2f} m of the target "
                            f"(nearest is {dist.min():.2f} m away)")
        cost = np.abs(dist - min(self.config.standoff, limit))  # (M,)
        if robot_xy is not None:  # prefer the near side of the target, by a small margin
            cost = cost + 0.05 * np.linalg.norm(xy - np.asarray(robot_xy, dtype=np.float64).reshape(1, 2), axis=1)
        cost[~ok] = np.inf
        best = int(np.argmin(cost))
        gx, gy = xy[best]
        centre = (box[:2] + box[3:5]) / 2
        yaw = math.atan2(centre[1] - gy, centre[0] - gx)
        goal = GoalPose(float(gx), float(gy), float(yaw), float(dist[best]))
        self.validate(goal.x, goal.y, goal.yaw)  # an internal error here means a bug, but never publish it unchecked
        return goal


def _densify(xy: np.ndarray, cell: float, max_gap: float = 0.5) -> np.ndarray:
    """Points every half cell along consecutive path positions (M, 2) -> (M', 2), so the path's cells
    are connected; a jump longer than max_gap metres (a relocalisation, a restart) is not bridged."""
    out = [xy[:1]]
    for a, b in zip(xy[:-1], xy[1:]):
        gap = float(np.linalg.norm(b - a))
        if 0 < gap <= max_gap:
            t = np.linspace(0.0, 1.0, int(np.ceil(gap / (cell / 2))) + 1)[1:, None]  # (n, 1)
            out.append(a + t * (b - a))
        else:
            out.append(b[None])
    return np.concatenate(out)


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius  # (2r+1, 2r+1)
