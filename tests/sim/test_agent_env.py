"""Agent, navigation grid, geodesics, environment measures, exploration, config from YAML."""

import math

import numpy as np
import open3d as o3d
import pytest

from llm3d_core.geometry import validate_frame
from sim.agent import Agent, greedy_action
from sim.config import AgentConfig, ExploreConfig, SimConfig, load_sim_config
from sim.env import Episode, SimEnv, load_episodes, save_episodes
from sim.explore import explore
from sim.navmesh import build_navgrid
from sim.simulator import Simulator


@pytest.fixture(scope="module")
def grid(scene):
    return build_navgrid(scene.mesh(), AgentConfig())


def test_agent_never_passes_through_walls(scene, grid):
    mesh = scene.mesh()
    walls = o3d.t.geometry.RaycastingScene()
    walls.add_triangles(o3d.core.Tensor(mesh.vertices), o3d.core.Tensor(mesh.faces.astype(np.uint32)))
    agent = Agent(AgentConfig(seed=3), grid)
    rng = np.random.default_rng(0)
    collided = 0
    for i in range(400):
        before = agent.position.copy()
        if i % 2:
            r = agent.act(int(rng.choice([1, 1, 1, 2, 3])))
        else:
            r = agent.velocity(float(rng.uniform(0, 1.0)), float(rng.uniform(-1, 1)), 0.5)
        collided += r.collided
        after = agent.position
        assert grid.is_navigable(after[None])[0]
        step = after - before
        if np.linalg.norm(step) > 1e-9:  # the segment crosses no surface at robot mid-height
            ray = np.array([[*before, 0.5, *step, 0.0]], np.float32)
            t = walls.cast_rays(o3d.core.Tensor(ray))["t_hit"].numpy()[0]
            assert not t <= 1.0
        clearance = walls.compute_distance(o3d.core.Tensor(np.array([[*after, 0.5]], np.float32))).numpy()[0]
        assert clearance > agent.config.radius - 1e-3
    assert collided > 0  # the random walk did hit things, and was stopped
    assert agent.path_length > 5.0


def test_geodesic_at_least_euclidean_and_unreachable(grid):
    rng = np.random.default_rng(5)
    region = grid.largest_component()
    for _ in range(15):
        a, b = grid.sample_navigable(rng, region), grid.sample_navigable(rng, region)
        d = grid.geodesic_distance(a, b)
        assert math.isfinite(d) and d >= np.linalg.norm(a - b) - 1e-9
    path = grid.shortest_path(a, b)
    assert path is not None and grid.is_navigable(path).all()
    # outside the building (behind the outer wall) is floor-less / disconnected: unreachable
    outside = grid.origin + 0.01
    assert grid.geodesic_distance(a, outside) == math.inf
    assert grid.shortest_path(a, outside) is None


def test_actions_noise_and_errors(grid):
    agent = Agent(AgentConfig(seed=1, drift_xy_std=0.1, drift_yaw_std_deg=5.0, depth_noise_std=0.01), grid)
    yaw = agent.yaw
    agent.act("turn_left")
    assert math.isclose((agent.yaw - yaw) % (2 * math.pi), math.radians(15), abs_tol=1e-9)
    for _ in range(20):
        agent.act("move_forward")
        agent.act(2)
    assert not np.allclose(agent.odom_T_world_camera(), agent.T_world_camera())  # drift in the reported pose only
    depth = np.full((4, 4), 2.0, np.float32)
    depth[0, 0] = 0
    noisy = agent.add_depth_noise(depth)
    assert noisy[0, 0] == 0 and not np.allclose(noisy, depth)
    with pytest.raises(ValueError, match="unknown action"):
        agent.act("jump")
    with pytest.raises(ValueError, match="not navigable"):
        agent.reset(*(grid.origin + 0.01), 0.0)
    with pytest.raises(ValueError, match="AgentConfig.radius"):
        AgentConfig(radius=-1)


def test_env_episode_measures_and_oracle(small_config, tmp_path):
    env = SimEnv(small_config)
    obs = env.reset(seed=3)
    assert set(obs) >= {"rgb", "depth", "instance", "pose", "K"} and obs["rgb"].shape == (120, 160, 3)
    start = env.get_metrics()
    assert start["success"] == 0 and math.isclose(start["distance_to_goal"], env.episode.geodesic_distance)
    while not env.episode_over:
        action = greedy_action(env.sim.agent, env._goal_field)
        if action is None or env.distance_to_goal() <= env.config.env.success_distance:
            action = "stop"
        env.step(action)
    m = env.get_metrics()
    assert m["success"] == 1.0 and m["spl"] > 0.9 and m["distance_to_goal"] <= 0.2
    with pytest.raises(RuntimeError, match="over"):
        env.step("move_forward")
    # episodes round-trip through JSON and replay identically
    path = save_episodes(tmp_path / "episodes.json", [env.episode])
    (ep,) = load_episodes(path)
    assert isinstance(ep, Episode) and ep == env.episode
    env.reset(episode=ep)
    assert np.allclose(env.sim.agent.position, ep.start_position)
    env.step("stop")
    assert env.episode_over and env.get_metrics()["success"] == 0.0  # stopped far from the goal
    env.close()


@pytest.mark.slow
def test_exploration_covers_most_of_the_scene():
    cfg = SimConfig(render=__import__("tests.sim.conftest", fromlist=["SMALL"]).SMALL, explore=ExploreConfig(max_steps=400))
    sim = Simulator(cfg)
    sim.load(11)
    result = explore(sim)
    assert result.coverage >= 0.85 and result.collisions == 0
    assert len(result.frames) == result.steps + 1
    depth, K, T = validate_frame(result.frames[-1])
    assert result.frames[-1].instance_ids is not None and result.frames[-1].timestamp > 0
    sim.close()


def test_yaml_section_loads_and_rejects_typos(tmp_path):
    cfg = load_sim_config()
    assert cfg.render.width == 640 and cfg.render.backend == "auto" and cfg.agent.turn_deg == 15.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("llm3d_sim_bridge:\n  ros__parameters:\n    sim:\n      render:\n        widht: 3\n")
    with pytest.raises(ValueError, match="widht"):
        load_sim_config(bad)
