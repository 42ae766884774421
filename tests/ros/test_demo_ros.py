"""`llm3d demo --ros`: the demo's episode through `llm3d bringup --sim` and the clients.

The route and parameter helpers are checked without a graph; the whole run is one slow test over
real processes and real DDS.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml


def test_route_waypoints_follow_the_route_at_the_spacing():
    from llm3d_ros.demo import route_waypoints

    path = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 1.0], [2.0, 2.0]])  # turns in place first
    wps = route_waypoints(path, 1.0)
    assert [(round(x, 3), round(y, 3)) for x, y, _ in wps] == [(1.0, 0.0), (2.0, 0.0), (2.0, 1.0), (2.0, 2.0)]
    assert math.isclose(wps[0][2], 0.0) and math.isclose(wps[-1][2], math.pi / 2)  # facing along the route
    assert route_waypoints(np.zeros((5, 2)), 1.0) == [] and route_waypoints(np.zeros((1, 2)), 1.0) == []


def test_params_patch_only_what_the_demo_needs(tmp_path):
    from llm3d_core.config import DEFAULT_CONFIG
    from llm3d_ros.demo import RosDemoConfig, write_params
    from sim.demo import DemoConfig

    path = write_params(DEFAULT_CONFIG, tmp_path, 11003, DemoConfig(width=160, height=120), "ckpt/dir")
    data, base = yaml.safe_load(path.read_text()), yaml.safe_load(DEFAULT_CONFIG.read_text())
    bridge = data["llm3d_sim_bridge"]["ros__parameters"]
    assert bridge["scene_seed"] == 11003 and bridge["sim"]["render"]["width"] == 160
    assert bridge["sim"]["render"]["fx"] < base["llm3d_sim_bridge"]["ros__parameters"]["sim"]["render"].get("fx", 525)
    assert data["llm3d_mapper"]["ros__parameters"]["map_path"] == str((tmp_path / "map").resolve())
    assert data["llm3d_reasoner"]["ros__parameters"]["map_dir"] == str((tmp_path / "map").resolve())
    assert data["llm3d_reasoner"]["ros__parameters"]["checkpoint"] == "ckpt/dir"
    # everything else is the robot's configuration, unchanged
    assert data["llm3d_mapper"]["ros__parameters"]["mapper"] == base["llm3d_mapper"]["ros__parameters"]["mapper"]
    assert data["llm3d_reasoner"]["ros__parameters"]["model"] == base["llm3d_reasoner"]["ros__parameters"]["model"]
    with pytest.raises(ValueError, match="waypoint_spacing"):
        RosDemoConfig(waypoint_spacing=0.0)


@pytest.mark.ros
@pytest.mark.slow
def test_demo_ros_quick_runs_the_episode_through_the_nodes(tmp_path, capsys):
    from llm3d_cli.main import main

    out = tmp_path / "demo"
    rc = main(["demo", "--ros", "--quick", "--device", "cpu", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err[-4000:]
    data = json.loads((out / "demo.json").read_text())
    summary = data["summary"]
    assert summary["stack"].startswith("ROS 2") and "report:" in printed.out
    assert (out / "report.html").is_file() and (out / "map.png").stat().st_size > 5_000
    assert (out / "map" / "map.json").is_file()  # the mapper node saved it
    assert summary["fused"] > 5 and summary["objects"] > 0  # the mapper fused the streamed frames
    assert not summary["errors"], summary["errors"]  # every request answered through the services
    assert len(data["qa"]) == 3 and len(data["grounding"]) == 1
    nav = summary["navigation"]
    assert nav is not None and nav["state"] in ("reached", "failed", "timeout") and nav["distance_to_target_m"] >= 0
    path = np.asarray(data["explore_path_xy"])
    assert np.linalg.norm(np.diff(path, axis=0), axis=1).sum() > 1.0  # the robot drove the route
