"""Goal following on the simulator's navigation grid: plan a shortest path, then track it.

ROS-free on purpose (style rule 2): the ROS bridge (`llm3d_ros.nodes.sim_bridge_node`) only
converts a `goal_pose` message into (x, y[, yaw]) and feeds `PathFollower.command()` into
`Agent.velocity()`; everything that needs geometry lives here and is unit-tested alone.

Planning: a minimum-cost path on the 8-connected navigable grid (`NavGrid.distance_field` with
`NavGrid.planning_costs`, so paths keep a margin beyond the robot radius where the free space
allows it instead of hugging walls, as the shortest path would).

Tracking (pure pursuit, Coulter 1992, "Implementation of the Pure Pursuit Path Tracking
Algorithm", CMU-RI-TR-92-01, simplified to a heading controller): the carrot is the farthest
path point within `lookahead` of the robot that the robot can also reach in a straight line
through navigable cells. Steering to a visible carrot is what keeps the robot out of obstacles
when it cuts corners; a carrot that is far off the heading makes the robot turn in place first
(a differential drive can, and arcs would swing the body wide). Speed tapers near the goal, so
the robot stops inside the tolerance instead of overshooting it.

Recovery: a robot that was told to drive but did not move (the agent stops before the first
non-navigable point; an arc can graze a corner the straight chord clears) first turns in place
until it faces the carrot within `PRECISE_DEG`, driving straight along the free chord; if that
is blocked too, it backs up one tick along the way it came and tries again.

Failure modes are explicit: an invalid or unreachable goal raises `GoalError` in `set_goal`
(nothing changes); a robot that stops making progress (blocked by something the grid did not
know) ends the goal with state FAILED after `stuck_timeout_s`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.navmesh import NavGrid

IDLE, ACTIVE, REACHED, FAILED = "idle", "active", "reached", "failed"
PRECISE_DEG = 2.0  # heading error allowed while recovering from a blocked step
BACKUP_AFTER = 3  # blocked ticks (turned, still blocked) before backing up


class GoalError(ValueError):
    """A goal that cannot be followed; the message says why (non-finite, outside, blocked, unreachable)."""


@dataclass
class FollowConfig:
    """Path tracking parameters.

    Fields:
        goal_tolerance: metres; the goal position counts as reached within this distance.
        yaw_tolerance_deg: degrees; a goal with a heading is reached when also within this.
        max_linear: m/s forward speed limit (the controller never reverses).
        max_angular: rad/s turn rate limit.
        lookahead: metres; the pure-pursuit carrot distance along the path.
        heading_gain: rad/s of turn per radian of heading error (before the limit).
        turn_in_place_deg: degrees of heading error above which the robot turns without driving.
        slowdown_radius: metres from the goal where speed starts to taper linearly.
        min_linear: m/s floor of the tapered speed, so the robot does not crawl forever near the goal.
        snap_cells: a goal off the navigable area by at most this many cells is moved onto it
            (a goal on the edge of free space is normal; one inside a wall is not).
        stuck_timeout_s: seconds without `progress_epsilon` metres of progress before FAILED.
        progress_epsilon: metres of remaining-distance decrease that count as progress.
        backup_speed: m/s of the short reverse when turning in place did not free a blocked robot.
    """

    goal_tolerance: float = 0.2
    yaw_tolerance_deg: float = 10.0
    max_linear: float = 0.5
    max_angular: float = 1.0
    lookahead: float = 0.4
    heading_gain: float = 2.0
    turn_in_place_deg: float = 35.0
    slowdown_radius: float = 0.6
    min_linear: float = 0.05
    snap_cells: int = 2
    stuck_timeout_s: float = 10.0
    progress_epsilon: float = 0.05
    backup_speed: float = 0.1

    def __post_init__(self) -> None:
        for name in ("goal_tolerance", "yaw_tolerance_deg", "max_linear", "max_angular", "lookahead", "heading_gain",
                     "turn_in_place_deg", "slowdown_radius", "stuck_timeout_s", "progress_epsilon",
                     "backup_speed"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"FollowConfig.{name} must be a finite number > 0, got {value!r}")
        if not 0 <= self.min_linear <= self.max_linear:
            raise ValueError(f"FollowConfig.min_linear must be in [0, max_linear={self.max_linear}], "
                             f"got {self.min_linear!r}")
        if self.turn_in_place_deg > 180:
            raise ValueError(f"FollowConfig.turn_in_place_deg must be <= 180, got {self.turn_in_place_deg!r}")
        if not (isinstance(self.snap_cells, int) and 0 <= self.snap_cells <= 10):
            raise ValueError(f"FollowConfig.snap_cells must be an integer in [0, 10], got {self.snap_cells!r}")


def wrap_angle(a: float) -> float:
    """Angle in [-pi, pi)."""
    return (a + math.pi) % (2 * math.pi) - math.pi


def plan_path(grid: NavGrid, start: np.ndarray, goal: np.ndarray, snap_cells: int = 2) -> np.ndarray:
    """(N, 2) world xy from `start` to `goal` over navigable cells (first = start, last = goal).

    Raises GoalError when the goal is not finite, outside the grid, not within `snap_cells` of a
    navigable cell, or not connected to the start.
    """
    start, goal = np.asarray(start, np.float64).reshape(2), np.asarray(goal, np.float64).reshape(2)
    if not np.all(np.isfinite(goal)):
        raise GoalError(f"goal ({goal[0]}, {goal[1]}) is not finite")
    if not grid.inside(grid.world_to_cell(goal))[0]:
        lo, hi = grid.origin, grid.origin + np.array(grid.shape[::-1]) * grid.cell
        raise GoalError(f"goal ({goal[0]:.2f}, {goal[1]:.2f}) is outside the map "
                        f"[{lo[0]:.2f}, {hi[0]:.2f}] x [{lo[1]:.2f}, {hi[1]:.2f}]")
    goal_cell = grid.snap(goal, snap_cells)
    if goal_cell is None:
        raise GoalError(f"goal ({goal[0]:.2f}, {goal[1]:.2f}) is in an obstacle or too close to one for the "
                        f"robot (no navigable cell within {snap_cells} cells)")
    start_cell = grid.snap(start, snap_cells)
    if start_cell is None:
        raise GoalError(f"the robot at ({start[0]:.2f}, {start[1]:.2f}) is not on the navigable area")
    # Field from the goal: its traceback from the start cell runs goal -> start; reverse it.
    field_ = grid.distance_field(goal_cell[None], grid.planning_costs())
    cells = field_.path_to(start_cell)
    if cells is None:
        raise GoalError(f"goal ({goal[0]:.2f}, {goal[1]:.2f}) is not reachable from the robot at "
                        f"({start[0]:.2f}, {start[1]:.2f}) (not connected on the navigation grid)")
    path = cells[::-1]  # (N, 2) start -> goal cell centres
    # End on the requested point when it is navigable itself, not on its cell centre.
    if grid.is_navigable(goal[None])[0]:
        path = np.vstack([path, goal[None]])
    return path


def line_is_free(grid: NavGrid, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the straight segment a -> b stays on navigable cells (sampled every half cell)."""
    n = max(2, int(math.ceil(float(np.linalg.norm(b - a)) / (0.5 * grid.cell))) + 1)
    samples = a + np.linspace(0.0, 1.0, n)[:, None] * (b - a)  # (n, 2)
    return bool(grid.is_navigable(samples).all())


class PathFollower:
    """Drives a differential-drive robot along a planned path to one goal at a time.

    `set_goal()` plans (or raises GoalError); `command()` is called every control tick with the
    robot's true pose and elapsed time and returns (v, omega). `state` is IDLE, ACTIVE, REACHED or
    FAILED; `message` says why it ended.
    """

    def __init__(self, grid: NavGrid, config: FollowConfig | None = None) -> None:
        self.grid = grid
        self.config = config or FollowConfig()
        self.state = IDLE
        self.message = ""
        self.path: np.ndarray | None = None  # (N, 2)
        self.goal: np.ndarray | None = None  # (2,)
        self.goal_yaw: float | None = None
        self._reset_tracking()

    def _reset_tracking(self) -> None:
        self._index = 0  # path points before this one are behind the robot
        self._best_remaining = math.inf
        self._since_progress_s = 0.0
        self._last_xy: np.ndarray | None = None  # where the last forward command started
        self._last_step = 0.0  # metres the last command asked for
        self._blocked = 0  # consecutive commands that did not move the robot
        self._precise = False  # align tightly before driving, until the robot moves freely again

    def set_goal(self, start_xy: np.ndarray, goal_xy: np.ndarray, goal_yaw: float | None = None) -> np.ndarray:
        """Plans from start to goal and makes it the active goal; returns the path (N, 2).

        On GoalError the previous goal (if any) stays as it was.
        """
        if goal_yaw is not None and not math.isfinite(goal_yaw):
            raise GoalError(f"goal heading {goal_yaw} is not finite")
        path = plan_path(self.grid, start_xy, goal_xy, self.config.snap_cells)
        self.path, self.goal, self.goal_yaw = path, path[-1].copy(), goal_yaw
        self._reset_tracking()
        self.state, self.message = ACTIVE, f"following a {self.path_length(path):.2f} m path"
        return path

    def cancel(self, why: str = "cancelled") -> None:
        if self.state == ACTIVE:
            self.state, self.message = IDLE, why

    @staticmethod
    def path_length(path: np.ndarray) -> float:
        return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum()) if len(path) > 1 else 0.0

    def remaining(self, xy: np.ndarray) -> float:
        """Metres left: to the next path point, then along the path (0 when idle)."""
        if self.path is None or self.state != ACTIVE:
            return 0.0
        rest = self.path[self._index:]
        return float(np.linalg.norm(rest[0] - xy)) + self.path_length(rest)

    def _advance(self, xy: np.ndarray) -> None:
        """Moves the index to the path point nearest the robot within the next stretch (never backwards).

        Only a window ahead is searched, so a path that doubles back near itself cannot make the
        robot skip the loop; the nearest point (not every point within some radius) keeps the
        index on the robot's side of a corner, where the rest of the path is still in sight.
        """
        assert self.path is not None
        window = self.path[self._index:self._index + int(math.ceil(2 * self.config.lookahead / self.grid.cell)) + 2]
        self._index += int(np.argmin(np.linalg.norm(window - xy, axis=1)))

    def _carrot(self, xy: np.ndarray) -> np.ndarray:
        """The farthest path point ahead within lookahead that a straight drive reaches through free cells.

        When none ahead is visible (the robot swung off the path), the nearest visible path point,
        even one behind: driving to a point it cannot reach in a straight line is what gets stuck.
        """
        assert self.path is not None
        carrot = None
        for point in self.path[self._index:]:
            if np.linalg.norm(point - xy) > self.config.lookahead:
                break
            if line_is_free(self.grid, xy, point):
                carrot = point
        if carrot is not None:
            return carrot
        order = np.argsort(np.linalg.norm(self.path - xy, axis=1))
        for i in order[:20]:
            if line_is_free(self.grid, xy, self.path[i]):
                return self.path[i]
        return self.path[self._index]

    def command(self, x: float, y: float, yaw: float, dt: float) -> tuple[float, float]:
        """(v m/s, omega rad/s) for the next `dt` seconds; (0, 0) unless a goal is active."""
        if self.state != ACTIVE or self.path is None or self.goal is None:
            return 0.0, 0.0
        c = self.config
        xy = np.array([x, y], np.float64)
        to_goal = float(np.linalg.norm(self.goal - xy))
        if to_goal <= c.goal_tolerance:
            if self.goal_yaw is None:
                return self._finish(REACHED, f"reached the goal ({to_goal:.2f} m off)")
            err = wrap_angle(self.goal_yaw - yaw)
            if abs(err) <= math.radians(c.yaw_tolerance_deg):
                return self._finish(REACHED, f"reached the goal ({to_goal:.2f} m, {math.degrees(err):.1f} deg off)")
            return 0.0, float(np.clip(c.heading_gain * err, -c.max_angular, c.max_angular))

        self._advance(xy)
        remaining = self.remaining(xy)
        if remaining < self._best_remaining - c.progress_epsilon:
            self._best_remaining, self._since_progress_s = remaining, 0.0
        else:
            self._since_progress_s += dt
            if self._since_progress_s > c.stuck_timeout_s:
                self._finish(FAILED, f"no progress for {c.stuck_timeout_s:.1f} s, {remaining:.2f} m from the goal")
                return 0.0, 0.0

        # Blocked: asked to drive, barely moved. Align tightly first; back up if that was not enough.
        if self._last_xy is not None and self._last_step > 0:
            moved = float(np.linalg.norm(xy - self._last_xy))
            self._blocked = self._blocked + 1 if moved < 0.25 * self._last_step else 0
            self._precise = self._precise and moved < 0.25 * self._last_step or self._blocked > 0
        self._last_xy, self._last_step = None, 0.0
        if self._blocked >= BACKUP_AFTER:
            self._blocked = 0
            return -min(c.backup_speed, c.max_linear), 0.0

        carrot = self._carrot(xy)
        err = wrap_angle(math.atan2(carrot[1] - y, carrot[0] - x) - yaw)
        omega = float(np.clip(c.heading_gain * err, -c.max_angular, c.max_angular))
        if abs(err) > math.radians(PRECISE_DEG if self._precise else c.turn_in_place_deg):
            return 0.0, omega
        if self._precise:
            omega = 0.0  # straight along the free chord
        taper = min(1.0, to_goal / c.slowdown_radius)
        v = float(min(max(c.min_linear, c.max_linear * taper) * math.cos(err), c.max_linear))
        self._last_xy, self._last_step = xy, v * dt
        return v, omega

    def _finish(self, state: str, message: str) -> tuple[float, float]:
        self.state, self.message = state, message
        return 0.0, 0.0
