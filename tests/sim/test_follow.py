"""sim.follow: planning and pure-pursuit tracking on navigation grids, driven through the real Agent."""

import math

import numpy as np
import pytest

from sim.agent import Agent
from sim.config import AgentConfig
from sim.follow import ACTIVE, FAILED, IDLE, REACHED, FollowConfig, GoalError, PathFollower, line_is_free, plan_path
from sim.navmesh import NavGrid, build_navgrid

CELL = 0.05
DT = 0.1  # the bridge's default 10 Hz control tick


def _grid(navigable: np.ndarray) -> NavGrid:
    """A NavGrid from a navigable mask (floor everywhere, obstacles where not navigable)."""
    floor = np.ones_like(navigable)
    return NavGrid(origin=np.zeros(2), cell=CELL, floor=floor, obstacle=~navigable, navigable=navigable)


def _wall_with_gap() -> NavGrid:
    """4 m x 3 m, a 0.3 m wall across x = 2 m with a 0.6 m gap near y = 2.5 m: the path must bend through it.

    Navigable cells touch the wall (no radius margin): a harder case than generated scenes, whose
    planner keeps a margin from walls.
    """
    nav = np.ones((60, 80), bool)  # rows = y, cols = x
    nav[[0, -1], :] = nav[:, [0, -1]] = False
    nav[:, 37:43] = False
    nav[44:56, 37:43] = True  # the gap, y in [2.2, 2.8)
    return _grid(nav)


def _drive(follower: PathFollower, agent: Agent, max_steps: int = 2000) -> list[np.ndarray]:
    """Runs the follower to completion through Agent.velocity (which collision-checks); returns the positions."""
    trace = [agent.position]
    for _ in range(max_steps):
        if follower.state != ACTIVE:
            break
        v, omega = follower.command(agent.x, agent.y, agent.yaw, DT)
        agent.velocity(v, omega, DT)
        trace.append(agent.position)
    return trace


def test_follows_a_bent_path_through_a_gap_without_touching_the_wall():
    grid = _wall_with_gap()
    agent = Agent(AgentConfig(), grid)
    agent.reset(0.5, 0.5, math.pi)  # facing away from the goal: it must turn first
    follower = PathFollower(grid, FollowConfig(goal_tolerance=0.1))
    path = follower.set_goal(agent.position, np.array([3.5, 0.5]))
    assert follower.state == ACTIVE and np.allclose(path[-1], [3.5, 0.5])
    assert grid.is_navigable(path).all()
    trace = np.array(_drive(follower, agent))
    assert follower.state == REACHED, follower.message
    assert np.linalg.norm(agent.position - [3.5, 0.5]) <= 0.1
    assert agent.collisions == 0  # no commanded step was ever blocked by the grid
    assert grid.is_navigable(trace).all()
    assert trace[:, 1].max() > 2.2  # it went through the gap, not through the wall
    assert follower.command(agent.x, agent.y, agent.yaw, DT) == (0.0, 0.0)  # done: it stays put


def test_reaches_random_goals_in_a_generated_scene(scene):
    grid = build_navgrid(scene.mesh(), AgentConfig())
    rng = np.random.default_rng(0)
    for _ in range(5):
        agent = Agent(AgentConfig(), grid)
        agent.reset(*grid.sample_navigable(rng), rng.uniform(-math.pi, math.pi))
        goal = grid.sample_navigable(rng)
        follower = PathFollower(grid, FollowConfig())
        follower.set_goal(agent.position, goal)
        trace = np.array(_drive(follower, agent))
        assert follower.state == REACHED, follower.message
        assert np.linalg.norm(agent.position - goal) <= follower.config.goal_tolerance
        assert agent.collisions == 0 and grid.is_navigable(trace).all()


def test_final_heading_is_reached_when_the_goal_has_one():
    grid = _wall_with_gap()
    agent = Agent(AgentConfig(), grid)
    agent.reset(0.5, 0.5, 0.0)
    follower = PathFollower(grid)
    follower.set_goal(agent.position, np.array([1.5, 1.5]), goal_yaw=-math.pi / 2)
    _drive(follower, agent)
    assert follower.state == REACHED, follower.message
    assert abs((agent.yaw + math.pi / 2 + math.pi) % (2 * math.pi) - math.pi) <= math.radians(10.0) + 1e-6


@pytest.mark.parametrize("goal, match", [
    ((float("nan"), 1.0), "not finite"),
    ((1.0, float("inf")), "not finite"),
    ((50.0, 1.0), "outside the map"),
    ((-0.5, 1.0), "outside the map"),
    ((2.0, 1.0), "in an obstacle"),  # the middle of the wall
])
def test_invalid_goals_raise_and_leave_the_follower_unchanged(goal, match):
    grid = _wall_with_gap()
    follower = PathFollower(grid)
    with pytest.raises(GoalError, match=match):
        follower.set_goal(np.array([0.5, 0.5]), np.array(goal))
    assert follower.state == IDLE and follower.path is None


def test_unreachable_goal_is_reported():
    nav = np.ones((40, 80), bool)
    nav[[0, -1], :] = nav[:, [0, -1]] = False
    nav[:, 38:42] = False  # a wall with no gap: two disconnected rooms
    grid = _grid(nav)
    with pytest.raises(GoalError, match="not reachable"):
        plan_path(grid, np.array([0.5, 0.5]), np.array([3.5, 0.5]))
    follower = PathFollower(grid)
    follower.set_goal(np.array([0.5, 0.5]), np.array([1.5, 1.0]))  # a reachable one is still fine
    with pytest.raises(GoalError):
        follower.set_goal(np.array([0.5, 0.5]), np.array([3.5, 0.5]))
    assert follower.state == ACTIVE and np.allclose(follower.goal, [1.5, 1.0])  # the previous goal stays


def test_blocked_robot_fails_instead_of_pushing_forever():
    """The planner's grid says free, the robot's world says wall (an unmapped obstacle): FAILED."""
    open_grid = _grid(np.pad(np.ones((38, 78), bool), 1))
    world = open_grid.navigable.copy()
    world[:, 38:42] = False
    agent = Agent(AgentConfig(), _grid(world))
    agent.reset(0.5, 1.0, 0.0)
    follower = PathFollower(open_grid, FollowConfig(stuck_timeout_s=2.0))
    follower.set_goal(agent.position, np.array([3.5, 1.0]))
    _drive(follower, agent, max_steps=500)
    assert follower.state == FAILED and "no progress" in follower.message
    assert agent.x < 2.0


def test_cancel_stops_the_robot():
    grid = _wall_with_gap()
    follower = PathFollower(grid)
    follower.set_goal(np.array([0.5, 0.5]), np.array([3.5, 0.5]))
    follower.cancel("test")
    assert follower.state == IDLE and follower.message == "test"
    assert follower.command(0.5, 0.5, 0.0, DT) == (0.0, 0.0)
    assert follower.remaining(np.array([0.5, 0.5])) == 0.0


def test_line_of_sight():
    grid = _wall_with_gap()
    assert line_is_free(grid, np.array([0.5, 0.5]), np.array([1.5, 2.0]))
    assert not line_is_free(grid, np.array([0.5, 0.5]), np.array([3.5, 0.5]))


@pytest.mark.parametrize("kwargs, field", [
    ({"goal_tolerance": 0.0}, "goal_tolerance"),
    ({"max_linear": float("nan")}, "max_linear"),
    ({"min_linear": 1.0, "max_linear": 0.5}, "min_linear"),
    ({"snap_cells": -1}, "snap_cells"),
])
def test_follow_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        FollowConfig(**kwargs)


def test_map_to_odom_absorbs_odometry_drift():
    """What the bridge publishes as map -> odom (sim.agent.Agent.T_world_odom, added for it)."""
    grid = _wall_with_gap()
    exact = Agent(AgentConfig(), grid)
    exact.reset(0.5, 0.5, 0.0)
    exact.velocity(0.3, 0.4, 1.0)
    assert np.allclose(exact.T_world_odom(), np.eye(4))
    drifting = Agent(AgentConfig(drift_xy_std=0.2, drift_yaw_std_deg=10.0, seed=1), grid)
    drifting.reset(0.5, 0.5, 0.0)
    drifting.velocity(0.3, 0.4, 2.0)
    assert not np.allclose(drifting.T_world_odom(), np.eye(4))
    assert np.allclose(drifting.T_world_odom() @ drifting.T_odom_base(), drifting.T_world_base())
