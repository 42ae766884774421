"""`llm3d_reasoner` in the whole stack: sim bridge -> mapper -> reasoner as `llm3d bringup --sim` starts
them, one stack and two namespaced stacks on one domain."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


FULL_STACK = """\
llm3d_sim_bridge:
  ros__parameters:
    rate_hz: 10.0
    sim:
      render:
        width: 160
        height: 120
        fx: 131.25
        fy: 131.25
llm3d_mapper:
  ros__parameters:
    map_path: {map_dir}
    cloud_period_s: 1.0
    mapper:
      device: cpu
      sample_stride: 4
      use_tsdf: false
      objects_every: 5
      encoder:
        feature_dim: 16
        text_aligned: false
llm3d_reasoner:
  ros__parameters:
    map_dir: {map_dir}
    map_refresh_period_s: 1.0
    frame_input:
      encoder:
        feature_dim: 16
        text_aligned: false
    map_poll_period_s: 0.5
    checkpoint: {checkpoint}
    torch_threads: 1
"""


@pytest.mark.slow
def test_full_chain_bringup_sim_ask_and_navigate(assets, tmp_path):
    """sim bridge -> mapper -> reasoner as `llm3d bringup --sim` starts them; the client asks and navigates;
    the goal lies in a free cell of the mapper's /map (nav_msgs/OccupancyGrid, as Nav2 reads it)."""
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import OccupancyGrid
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from llm3d_ros.client import Llm3dClient
    from llm3d_ros.view_input import from_camera_view
    from tests.ros.test_mapper_node import Bringup, _alive

    params = tmp_path / "params.yaml"
    params.write_text(FULL_STACK.format(map_dir=tmp_path / "map", checkpoint=assets["ckpt"]))
    bringup = Bringup("--sim", "--params-file", str(params), "--device", "cpu")
    try:
        with Llm3dClient(server_timeout_s=120.0, timeout_s=60.0) as client:
            deadline = time.monotonic() + 120.0
            reply = client.ask("What is in the room?")
            views = 0
            while (not reply.success and "no map yet" in reply.message
                   or from_camera_view(reply.message)) and time.monotonic() < deadline:
                views += from_camera_view(reply.message)  # answered about the camera view meanwhile
                time.sleep(0.5)  # the mapper has not fused and saved a frame yet
                reply = client.ask("What is in the room?")
            assert reply.success and not from_camera_view(reply.message), f"{reply.message}\n{bringup.output}"
            # Nav2's view of the same run: the mapper's /map, and the goal the reasoner publishes.
            grids: list = []
            goals: list = []
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            client.node.create_subscription(OccupancyGrid, "map", lambda m: grids.append((time.monotonic(), m)), latched)
            client.node.create_subscription(PoseStamped, "goal_pose", lambda m: goals.append((time.monotonic(), m)), 10)
            result = client.navigate("the table", 1.0, timeout_s=120.0)
            assert result.status in ("succeeded", "aborted"), result
            print(f"\nfull chain: ask {reply.seconds * 1000:.0f} ms; navigate {result.status} in "
                  f"{result.seconds:.1f} s: {result.message}")
            assert result.success, f"{result.message}\n{bringup.output[-4000:]}"
            assert grids and goals, (len(grids), len(goals))
            grid = grids[-1][1]
            assert grid.header.frame_id == "map" and grid.info.resolution == pytest.approx(0.05)
            values = np.frombuffer(bytes(grid.data), np.int8).reshape(grid.info.height, grid.info.width)
            assert set(np.unique(values)) <= {-1, 0, 100} and (values == 0).any() and (values == 100).any()
            sent_at, goal = goals[0]
            before = [m for t, m in grids if t <= sent_at] or [grid]  # the grid Nav2 held when the goal came
            g = before[-1]
            at = np.frombuffer(bytes(g.data), np.int8).reshape(g.info.height, g.info.width)
            col = int((goal.pose.position.x - g.info.origin.position.x) // g.info.resolution)
            row = int((goal.pose.position.y - g.info.origin.position.y) // g.info.resolution)
            assert 0 <= row < g.info.height and 0 <= col < g.info.width and at[row, col] == 0, (row, col)
    finally:
        rc = bringup.stop()
    assert rc == 0, bringup.output
    assert not any(_alive(pid) for pid in bringup.node_pids())


@pytest.mark.slow
def test_two_namespaced_stacks_share_one_domain(assets, tmp_path):
    """Two robots on one ROS domain: `llm3d bringup --sim --namespace robotN --map-dir ...` twice. Each
    stack's topics, services and TF stay in its namespace (TF on /robotN/tf, as Nav2 remaps it), each
    mapper saves its own map folder, and each reasoner answers under its namespace."""
    from nav_msgs.msg import OccupancyGrid
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    from llm3d_ros.client import Llm3dClient
    from llm3d_ros.view_input import from_camera_view
    from tests.ros.test_mapper_node import Bringup, _alive

    params = tmp_path / "params.yaml"
    params.write_text(FULL_STACK.format(map_dir=tmp_path / "shared_map", checkpoint=assets["ckpt"]))
    names = ("robot1", "robot2")
    stacks = {ns: Bringup("--sim", "--params-file", str(params), "--device", "cpu", "--namespace", ns,
                          "--map-dir", str(tmp_path / ns)) for ns in names}
    try:
        with Llm3dClient(names[0], server_timeout_s=180.0, timeout_s=60.0) as one, \
                Llm3dClient(names[1], server_timeout_s=180.0, timeout_s=60.0, node_name="llm3d_client_2") as two:
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            heard: dict[str, list] = {topic: [] for topic in ("/tf", "/robot1/tf", "/robot2/tf")}
            for topic, seen in heard.items():
                one.node.create_subscription(TFMessage, topic, seen.append, 100)
            grids: dict[str, list] = {ns: [] for ns in names}
            for ns in names:
                one.node.create_subscription(OccupancyGrid, f"/{ns}/map", grids[ns].append, latched)
            for ns, client in zip(names, (one, two)):
                deadline = time.monotonic() + 180.0
                reply = client.ask("What is in the room?")
                while (not reply.success and "no map yet" in reply.message
                       or from_camera_view(reply.message)) and time.monotonic() < deadline:
                    time.sleep(0.5)  # the namespace's mapper has not fused and saved a frame yet
                    reply = client.ask("What is in the room?")
                assert reply.success and not from_camera_view(reply.message), \
                    f"{ns}: {reply.message}\n{stacks[ns].output[-4000:]}"
            assert one.spin_until(lambda: all(grids.values()) and heard["/robot1/tf"] and heard["/robot2/tf"], 30.0), \
                ({ns: len(g) for ns, g in grids.items()}, {t: len(m) for t, m in heard.items()})
            assert not heard["/tf"], "a namespaced stack published on the root /tf"
            frames = {t.child_frame_id for m in heard["/robot1/tf"] for t in m.transforms}
            assert "base_link" in frames or "odom" in frames, frames
            assert all(grids[ns][-1].header.frame_id == "map" for ns in names)
        for ns in names:  # each mapper saved its own folder (--map-dir), none the parameter file's
            assert any((tmp_path / ns).iterdir()), f"{ns} saved no map\n{stacks[ns].output[-3000:]}"
            assert f"in namespace /{ns}" in stacks[ns].output
        assert not (tmp_path / "shared_map").exists()
    finally:
        codes = {ns: bringup.stop() for ns, bringup in stacks.items()}
    assert codes == dict.fromkeys(names, 0), {ns: b.output[-3000:] for ns, b in stacks.items()}
    assert not any(_alive(pid) for b in stacks.values() for pid in b.node_pids())
