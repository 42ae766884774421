"""`llm3d demo --ros`: the demo's episode through `llm3d bringup --sim` and the clients.

The route and parameter helpers are checked without a graph; the whole run is one slow test over
real processes and real DDS.
"""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pytest
import yaml


def test_route_waypoints_follow_the_route_at_the_spacing():
    from llm3d_bench.ros_demo import route_waypoints

    path = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 1.0], [2.0, 2.0]])  # turns in place first
    wps = route_waypoints(path, 1.0)
    assert [(round(x, 3), round(y, 3)) for x, y, _ in wps] == [(1.0, 0.0), (2.0, 0.0), (2.0, 1.0), (2.0, 2.0)]
    assert math.isclose(wps[0][2], 0.0) and math.isclose(wps[-1][2], math.pi / 2)  # facing along the route
    assert route_waypoints(np.zeros((5, 2)), 1.0) == [] and route_waypoints(np.zeros((1, 2)), 1.0) == []


def test_params_patch_only_what_the_demo_needs(tmp_path):
    from llm3d_core.config import DEFAULT_CONFIG
    from llm3d_bench.ros_demo import RosDemoConfig, write_params
    from llm3d_bench.demo import DemoConfig

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
    assert not [e for e in summary["errors"] if "nothing in the map matches" not in e], summary["errors"]  # a refusal of a present target by the absence pointer is an answer
    assert len(data["qa"]) == 3 and len(data["grounding"]) == 1
    nav = summary["navigation"]
    assert nav is not None and nav["distance_to_target_m"] >= 0
    if nav["state"] == "no_goal":  # the reasoner refused to send the robot: then it says why and the robot stays
        # Two refusals are answers, not errors: the map checks found no match (the absence pointer
        # refuses 9 % of present targets on val), or the live map has no reachable free floor near
        # the target yet (the mapper fused what the streamed frames allowed; it varies run to run).
        drive = data["navigation"]
        assert re.search(r"nothing in the map matches|no goal for target .*no reachable free floor", drive["message"]), drive
        assert drive["driven_m"] < 0.05, drive
    else:
        assert nav["state"] in ("reached", "failed", "timeout"), nav
    path = np.asarray(data["explore_path_xy"])
    assert np.linalg.norm(np.diff(path, axis=0), axis=1).sum() > 1.0  # the robot drove the route


DRIVE_IOU = 0.5  # groundings this tight are driven to (see the full-chain test's docstring)


@pytest.mark.ros
@pytest.mark.slow
def test_full_chain_grounds_a_mapped_object_and_drives_within_1m_of_it(tmp_path):
    """sim bridge -> mapper -> reasoner, each its own process over DDS, with the shipped checkpoint on
    the demo's held-out scene at its full size: `ask` answers about the scene, `ground` returns a box
    overlapping an object the mapper mapped (3D IoU >= 0.25, ScanRefer's Acc@0.25), and `navigate_to`
    with the same words brings the simulated robot within 1 m of that object.

    Referring expressions for every mapped object are tried, nearest object first, until one grounds
    (the model grounds about half of them; which objects a drive maps depends on the frames the
    mapper fused) and the reasoner finds observed free floor next to it (a target whose surroundings
    the drive never saw gets success=False, "no reachable free floor", by design). The drive is
    tried for groundings at IoU >= 0.5: navigate_to parks next to the *map object* it grounded, and a
    looser match can be a segment much larger than the object (seen: "the white waste bin" at IoU
    0.38, a 'trash can' segment; the robot stopped 0.89 m from the segment, 2.18 m from the bin).
    """
    from llm3d_core.assets import shipped_checkpoint
    from llm3d_bench.ros_demo import RosDemoConfig, mapped_instances, navigate_ros, ros_session
    from llm3d_bench.demo import DemoConfig, ground_record, requests_about

    ckpt = shipped_checkpoint()
    assert ckpt is not None, "checkpoints/llm3d-objects is missing"
    cfg, rcfg = DemoConfig(), RosDemoConfig()
    with ros_session(cfg, str(ckpt), tmp_path, device="cpu", rcfg=rcfg) as s:
        answer, _ = s.reasoner.ask("What color is the table?")
        assert answer.strip() and not answer.startswith("(error")
        # Absent things (#22): ground and navigate_to refuse, no goal is published, ask says so.
        reply = s.client.ground("the giraffe")
        assert not reply.success and "nothing in the map matches" in reply.message, reply.message
        goals, start = s.driver.goals_heard, s.driver.pose()
        nav = s.client.navigate("Go to the giraffe.", cfg.success_distance, timeout_s=60.0)
        assert nav.status == "aborted" and not nav.success and nav.target is None, (nav.status, nav.message)
        assert "nothing in the map matches" in nav.message, nav.message
        time.sleep(1.0)  # a goal, had one been published, would have arrived by now
        assert s.driver.goals_heard == goals, "a goal was published for an absent target"
        assert np.linalg.norm(s.driver.pose()[:2] - start[:2]) < 0.05
        answer, _ = s.reasoner.ask("What colour is the giraffe?")
        assert answer == "There is no giraffe here.", answer
        seen = mapped_instances(s.map_dir, s.scene)
        assert seen, "the mapper node mapped none of the scene's objects"
        records = [r for r in requests_about(s.scene, s.grid, cfg.seed, seen)[0] if r["task"] == "ground"]
        robot = s.driver.pose()[:2]
        centre = {i.id: (np.asarray(i.box_min[:2]) + np.asarray(i.box_max[:2])) / 2 for i in s.scene.instances}
        records.sort(key=lambda r: float(np.linalg.norm(centre[r["object_ids"][0]] - robot)))
        tried, errors, nav = [], [], None
        for rec in records[:20]:
            hit = ground_record(s.reasoner, rec, [], errors)
            tried.append((rec["question"], round(hit["iou"], 2)))
            if hit["iou"] < DRIVE_IOU:
                continue
            nav = navigate_ros(s.client, s.driver, {"question": rec["question"], "object_ids": rec["object_ids"]},
                               s.scene, s.grid, cfg, rcfg)
            tried[-1] += (nav.state, round(nav.distance_to_target, 2)) + ((nav.message,) if nav.state == "no_goal" else ())
            if nav.state != "no_goal" and nav.target_iou is not None and nav.target_iou < 0.25:
                # navigate_to grounds its words again on the newest map save: a relation ("the waste
                # bin nearest to the cabinet") can pick another object there (seen in CI: another bin
                # 4.3 m from this one). That drive is about another target; try the next request.
                tried[-1] += (f"drove to another object (IoU {nav.target_iou:.2f})",)
                continue
            if nav.state != "no_goal":
                break
        print("requests tried (expression, IoU[, navigation state, metres to target[, why no goal]]):", tried)
        assert not [e for e in errors if "nothing in the map matches" not in e], errors
        assert any(t[1] >= 0.25 for t in tried), f"no grounding overlapped its target: {tried}"
        assert nav is not None and nav.state != "no_goal", f"no target grounded at IoU >= {DRIVE_IOU} had free floor near it: {tried}"
        assert nav.distance_to_target <= 1.0, (nav.state, nav.message, tried)
        assert nav.state == "reached" and nav.success, (nav.state, nav.message, tried)
