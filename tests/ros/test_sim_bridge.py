"""`llm3d_sim_bridge`: its config and message builders in memory, then `llm3d bringup --sim` end to end.

The end-to-end test runs the real stack as separate processes over DDS (sim bridge -> mapper) and
drives the simulated robot from this process through cmd_vel and goal_pose.
"""

import json
import math
import time

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from geometry_msgs.msg import PoseStamped, Twist
from rclpy.serialization import deserialize_message, serialize_message

from llm3d_core.config import ConfigError, config_from_dict, load_config
from llm3d_ros.conversions import (
    ConversionError,
    camera_info_from_K,
    camera_info_to_K,
    depth_to_image,
    goal_from_pose_stamped,
    image_to_depth_m,
    newest_goal_status,
    odometry_msg,
    twist_to_command,
)
from llm3d_ros.node_set import NODES, select_nodes
from llm3d_ros.nodes.sim_bridge_config import DEFAULT_SCENE_SEED, SimBridgeConfig
from sim.agent import pose_matrix
from tests.ros.test_mapper_node import Bringup, _alive

pytestmark = pytest.mark.ros

K = np.array([[131.25, 0.0, 79.5], [0.0, 131.25, 59.5], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------------- message builders (no graph)
def test_camera_info_round_trips_through_the_mappers_reader():
    info = camera_info_from_K(K, 160, 120, "cam")
    info = deserialize_message(serialize_message(info), type(info))  # what a subscriber receives
    assert np.allclose(camera_info_to_K(info), K)
    assert (info.width, info.height, info.header.frame_id) == (160, 120, "cam")
    assert np.allclose(np.reshape(info.p, (3, 4))[:, :3], K) and list(info.d) == [0.0] * 5
    with pytest.raises(ConversionError, match="fx, fy > 0"):
        camera_info_from_K(np.zeros((3, 3)), 160, 120, "cam")


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_image_round_trips_and_invalid_depth_becomes_zero(encoding):
    depth = np.array([[0.0, 0.5, 1.2345], [np.nan, 70.0, -1.0]], np.float32)  # (2, 3)
    msg = depth_to_image(depth, encoding, 1000.0, "cam")
    assert msg.encoding == encoding and msg.header.frame_id == "cam"
    back = image_to_depth_m(msg, 1000.0)
    assert np.allclose(back[0], [0.0, 0.5, 1.2345], atol=6e-4)  # 16UC1: millimetre rounding
    assert back[1, 0] == 0.0 and back[1, 2] == 0.0
    assert back[1, 1] == (0.0 if encoding == "16UC1" else 70.0)  # 70 m does not fit 16 bits of mm
    with pytest.raises(ConversionError):
        depth_to_image(depth, "8UC1", 1000.0, "cam")


def test_odometry_message_carries_the_planar_pose_and_twist():
    msg = odometry_msg(pose_matrix(1.0, -2.0, 0.7), 0.3, -0.2, "odom", "base_link")
    assert (msg.header.frame_id, msg.child_frame_id) == ("odom", "base_link")
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    assert (p.x, p.y, p.z) == pytest.approx((1.0, -2.0, 0.0))
    assert 2 * math.atan2(q.z, q.w) == pytest.approx(0.7)
    assert (msg.twist.twist.linear.x, msg.twist.twist.angular.z) == (0.3, -0.2)


def test_cmd_vel_is_clipped_and_non_finite_is_rejected():
    twist = Twist()
    twist.linear.x, twist.angular.z = 3.0, -5.0
    assert twist_to_command(twist, 0.5, 1.0) == (0.5, -1.0)
    twist.linear.y = float("nan")
    with pytest.raises(ConversionError, match="non-finite"):
        twist_to_command(twist, 0.5, 1.0)


def _goal(x: float, y: float, frame: str = "map", yaw: float | None = None, stamp_s: float = 0.0) -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.header.stamp.sec = int(stamp_s)
    msg.pose.position.x, msg.pose.position.y = x, y
    # A default Quaternion is the identity (w = 1): heading 0. All zeros asks for any heading.
    msg.pose.orientation.w = 0.0
    if yaw is not None:
        msg.pose.orientation.z, msg.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
    return msg


def test_goal_pose_parsing():
    assert goal_from_pose_stamped(_goal(1.0, 2.0), "map") == (1.0, 2.0, None)  # zero quaternion: any heading
    x, y, yaw = goal_from_pose_stamped(_goal(1.0, 2.0, yaw=2.0), "map")
    assert yaw == pytest.approx(2.0)
    assert goal_from_pose_stamped(PoseStamped(header=_goal(0, 0).header), "map")[2] == 0.0  # identity: face +x
    with pytest.raises(ConversionError, match="frame_id is 'odom'"):
        goal_from_pose_stamped(_goal(1.0, 2.0, "odom"), "map")
    with pytest.raises(ConversionError, match="frame_id is ''"):
        goal_from_pose_stamped(_goal(1.0, 2.0, ""), "map")
    with pytest.raises(ConversionError, match="not finite"):
        goal_from_pose_stamped(_goal(float("nan"), 2.0), "map")
    bad_q = _goal(1.0, 2.0)
    bad_q.pose.orientation.w = float("inf")
    with pytest.raises(ConversionError):
        goal_from_pose_stamped(bad_q, "map")


# ---------------------------------------------------------------------------- config and node set
def test_config_defaults_and_the_yaml_section_validate():
    from sim.scenes.scene import SPLITS

    assert DEFAULT_SCENE_SEED == SPLITS["test"].start  # the default scene is never a training scene
    cfg = load_config(SimBridgeConfig, "llm3d_sim_bridge")  # launch/llm3d.yaml
    assert cfg.scene_source() == DEFAULT_SCENE_SEED and cfg.rate_hz == 10.0
    assert cfg.color_topic == "camera/color/image_raw" and cfg.depth_encoding == "16UC1"
    assert cfg.follow_config().max_linear == cfg.max_linear_speed


@pytest.mark.parametrize("params, field", [
    ({"rate_hz": 0}, "rate_hz"),
    ({"scene_seed": -3}, "seed -3"),
    ({"depth_encoding": "mono8"}, "depth_encoding"),
    ({"map_to_odom": "guess"}, "map_to_odom"),
    ({"odom_frame": "map"}, "must differ"),
    ({"cmd_vel_timeout_s": float("nan")}, "cmd_vel_timeout_s"),
    ({"sim": {"render": {"width": 2}}}, "RenderConfig.width"),
    ({"depth_scale": 10000.0}, "16UC1"),
    ({"max_linear_speed": 0.01}, "min_linear"),
])
def test_config_validation_names_the_field(params, field):
    with pytest.raises(ConfigError, match=field):
        config_from_dict(SimBridgeConfig, params, "llm3d_sim_bridge")


def test_sim_bridge_starts_first_and_only_with_sim():
    assert NODES[0].name == "llm3d_sim_bridge" and NODES[0].when == "sim"
    assert [s.name for s in select_nodes(sim=True)][:2] == ["llm3d_sim_bridge", "llm3d_mapper"]
    assert "llm3d_sim_bridge" not in [s.name for s in select_nodes(sim=False)]


def test_unloadable_scene_stops_the_node_with_a_message(tmp_path, python_exe):
    import subprocess

    missing = tmp_path / "no_such_scene.json"
    result = subprocess.run([python_exe, "-m", "llm3d_ros.nodes.sim_bridge_node", "--ros-args", "-r",
                             "__node:=llm3d_sim_bridge", "-p", f"scene_file:={missing}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot load scene" in result.stderr and str(missing) in result.stderr


# ---------------------------------------------------------------------------- end to end
SMALL_STACK = """\
llm3d_sim_bridge:
  ros__parameters:
    rate_hz: 10.0
    status_period_s: 0.2
    warn_period_s: 0.0
    sim:
      render:
        width: 160
        height: 120
        fx: 131.25
        fy: 131.25
llm3d_mapper:
  ros__parameters:
    map_path: {map_path}
    cloud_period_s: 0.5
    status_period_s: 0.5
    mapper:
      device: cpu
      sample_stride: 8
      use_tsdf: false
      objects_every: 1000
      encoder:
        feature_dim: 16
        text_aligned: false
"""


class Client:
    """The test's ROS node: listens to the sim bridge and the mapper, publishes cmd_vel and goals."""

    def __init__(self) -> None:
        import rclpy
        from nav_msgs.msg import Odometry
        from rclpy.executors import SingleThreadedExecutor
        from action_msgs.msg import GoalStatusArray
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, PointCloud2
        from std_msgs.msg import String

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("sim_bridge_test_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        sensor = QoSProfile(depth=2, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.infos: list = []
        self.odoms: list = []
        self.clouds: list = []
        self.scene: dict = {}
        self.status: dict = {}
        self.node.create_subscription(CameraInfo, "camera/color/camera_info", self.infos.append, sensor)
        self.node.create_subscription(Odometry, "odom", self.odoms.append, 10)
        self.node.create_subscription(PointCloud2, "map_cloud", self.clouds.append, latched)
        self.node.create_subscription(String, "sim/scene", lambda m: self.scene.update(json.loads(m.data)), latched)
        self.node.create_subscription(String, "/llm3d_sim_bridge/status", self._on_status, latched)
        self.goal_status: list = []
        self.node.create_subscription(GoalStatusArray, "goal_status", self.goal_status.append, latched)
        self.cmd_vel = self.node.create_publisher(Twist, "cmd_vel", 10)
        self.goal = self.node.create_publisher(PoseStamped, "goal_pose", 10)

    def _on_status(self, msg) -> None:
        self.status = json.loads(msg.data)

    def spin_until(self, condition, timeout_s: float, what: str, bringup: Bringup) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if bringup.proc.poll() is not None:
                pytest.fail(f"bringup exited with {bringup.proc.returncode} while waiting for {what}:\n"
                            f"{bringup.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s} s waiting for {what}; status {self.status}\n{bringup.output}")
            self.executor.spin_once(timeout_sec=0.05)

    def spin_for(self, seconds: float) -> None:
        """Keeps the executor running while pacing publications (not a wait for a result)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def _odom_xy_yaw(msg) -> np.ndarray:
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return np.array([p.x, p.y, 2 * math.atan2(q.z, q.w)])


def _pick_goals(scene: dict, start: np.ndarray):
    """A reachable goal 1-2.5 m (geodesic) from start, and a point inside a wall, on the bridge's own grid."""
    from sim.config import AgentConfig
    from sim.navmesh import build_navgrid
    from sim.scenes import generate_scene

    grid = build_navgrid(generate_scene(scene["seed"]).mesh(), AgentConfig())
    field_ = grid.distance_field(grid.snap(start)[None])
    cells = np.argwhere(grid.navigable & (field_.metres > 1.0) & (field_.metres < 2.5))  # (N, 2)
    reachable = grid.cell_to_world(cells[len(cells) // 2])[0]
    walls = np.argwhere(grid.obstacle)
    inside_wall = next(xy for xy in grid.cell_to_world(walls[:: max(1, len(walls) // 500)])
                       if grid.snap(xy) is None)
    return reachable, inside_wall


def test_bringup_sim_runs_the_stack_and_drives_the_robot(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(SMALL_STACK.format(map_path=tmp_path / "map"))
    bringup = Bringup("--sim", "--params-file", str(params), "--device", "cpu")
    client = Client()
    try:
        # Sensors, odometry and the ground truth reach this process; then the mapper builds a map from them.
        client.spin_until(lambda: client.infos and client.odoms and client.scene and client.status, 60.0,
                          "camera info, odometry, the scene and the bridge status", bringup)
        info = client.infos[-1]
        assert (info.width, info.height, info.header.frame_id) == (160, 120, "camera_color_optical_frame")
        assert client.scene["seed"] == DEFAULT_SCENE_SEED and client.scene["instances"]
        client.spin_until(lambda: client.clouds and client.clouds[-1].width > 0, 90.0,
                          "a non-empty map_cloud from the mapper", bringup)
        assert client.clouds[-1].header.frame_id == "map"

        # cmd_vel drives the robot; when it stops coming, the robot stops (cmd_vel_timeout_s).
        before = _odom_xy_yaw(client.odoms[-1])
        twist = Twist()
        twist.angular.z = 0.8  # turning in place: moves the odometry wherever the robot stands
        for _ in range(10):
            client.cmd_vel.publish(twist)
            client.spin_for(0.1)
        client.spin_until(lambda: abs(_odom_xy_yaw(client.odoms[-1])[2] - before[2]) > 0.2, 10.0,
                          "odometry to turn under cmd_vel", bringup)
        client.spin_until(lambda: client.status["mode"] == "idle", 5.0, "the cmd_vel timeout to stop the robot",
                          bringup)
        resting = _odom_xy_yaw(client.odoms[-1])
        client.spin_for(0.5)
        assert np.allclose(_odom_xy_yaw(client.odoms[-1]), resting)

        # A reachable goal in the map frame is driven to along the navigation grid.
        start = np.array([client.status["pose"]["x"], client.status["pose"]["y"]])
        reachable, inside_wall = _pick_goals(client.scene, start)
        client.goal.publish(_goal(*reachable, stamp_s=1.0))
        client.spin_until(lambda: client.status["goal"]["state"] in ("reached", "failed"), 60.0,
                          "the robot to reach the goal", bringup)
        assert client.status["goal"]["state"] == "reached", client.status
        # goal_status (Nav2's action status shape) says the same, for the goal with that stamp.
        client.spin_until(lambda: newest_goal_status(client.goal_status[-1], 10**9) == GoalStatus.STATUS_SUCCEEDED,
                          5.0, "goal_status SUCCEEDED", bringup)
        # A goal in an obstacle is refused and reported ABORTED, so a sender does not wait for it forever.
        client.goal.publish(_goal(*inside_wall, stamp_s=2.0))
        client.spin_until(lambda: newest_goal_status(client.goal_status[-1], 2 * 10**9) == GoalStatus.STATUS_ABORTED,
                          10.0, "goal_status ABORTED for the refused goal", bringup)
        assert newest_goal_status(client.goal_status[-1], 10**9) == GoalStatus.STATUS_ABORTED  # the newest
        pose = client.status["pose"]
        assert math.dist((pose["x"], pose["y"]), reachable) <= 0.2 + 0.05  # goal_tolerance, one status late
        odom = _odom_xy_yaw(client.odoms[-1])
        assert math.dist(odom[:2], reachable) <= 0.25  # no drift configured: odometry is the true pose

        # Invalid goals are counted and ignored; the bridge keeps publishing.
        errors = client.status["errors"]["bad_goal"]
        frames = client.status["frames"]
        for goal in (_goal(float("nan"), 0.0), _goal(*inside_wall), _goal(*reachable, frame="odom"),
                     _goal(1e4, 1e4)):
            client.goal.publish(goal)
            client.spin_for(0.3)  # > one tick: within a tick only the newest goal is planned (last writer wins)
        client.spin_until(lambda: client.status["errors"]["bad_goal"] >= errors + 4, 10.0,
                          "the invalid goals to be counted", bringup)
        infos = len(client.infos)
        client.spin_until(lambda: client.status["frames"] > frames + 5 and len(client.infos) > infos + 3, 10.0,
                          "frames after the invalid goals", bringup)
        assert client.status["goal"]["state"] == "reached"  # an ignored goal changes nothing
        assert "in an obstacle" in bringup.output and "outside the map" in bringup.output
        assert client.status["collisions"] == 0
        assert bringup.proc.poll() is None
    finally:
        client.close()
        rc = bringup.stop()
    assert rc == 0, bringup.output
    assert "exit codes" not in bringup.output, bringup.output[-6000:]
    assert "simulation step failed" not in bringup.output  # not even while shutting down
    pids = bringup.node_pids()
    assert len(pids) == len(select_nodes(sim=True)) and not any(_alive(pid) for pid in pids)
