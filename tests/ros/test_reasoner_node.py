"""`llm3d_reasoner` end to end: the node as a separate process over real DDS, asked from this process.

The model is a tiny random Llama overfitted for a second to a few answers (tests/core/test_reasoner.py)
and saved as a checkpoint; the map is a small feature map of the sim bridge's default scene. This
process plays the robot: it publishes TF map -> base_link and "drives" by moving that transform.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.core.test_reasoner import TRAINED_ANSWER
from llm3d_ros.child_process import ChildProcess
from llm3d_ros.diagnostics import ERROR, OK, WARN

pytestmark = pytest.mark.ros

PARAMS = """\
llm3d_reasoner:
  ros__parameters:
    map_dir: {map_dir}
    mapper_save_service: ""
    status_period_s: 0.2
    map_poll_period_s: 0.2
    feedback_period_s: 0.1
    navigate_timeout_s: 30.0
    request_timeout_s: 60.0
    checkpoint: {checkpoint}
    device: cpu
    torch_threads: 1
    reasoner:
      max_sessions: 4
"""


class NodeProcess(ChildProcess):
    """One node started like `ros2 run` would, output collected."""

    def __init__(self, params: Path) -> None:
        super().__init__([sys.executable, "-m", "llm3d_ros.nodes.reasoner_node", "--ros-args", "-r",
                          "__node:=llm3d_reasoner", "--params-file", str(params)],
                         env={**os.environ, "OMP_NUM_THREADS": "1"})


class Robot:
    """The test's node: service and action clients, TF publisher (the robot pose), goal/cmd_vel listeners."""

    def __init__(self, node_proc: NodeProcess) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped, Twist
        from llm3d_interfaces.action import NavigateTo
        from llm3d_interfaces.srv import Ask, Ground, Plan
        from rclpy.action import ActionClient
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String
        from tf2_msgs.msg import TFMessage
        from visualization_msgs.msg import MarkerArray

        self.rclpy, self.node_proc = rclpy, node_proc
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("reasoner_test_robot", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.ask = self.node.create_client(Ask, "ask")
        self.ground = self.node.create_client(Ground, "ground")
        self.plan = self.node.create_client(Plan, "plan")
        self.navigate = ActionClient(self.node, NavigateTo, "navigate_to")
        self.tf = self.node.create_publisher(TFMessage, "/tf", 100)
        self.goals: list = []
        self.cmd_vels: list = []
        self.markers: list = []
        self.status: dict = {}
        self.node.create_subscription(PoseStamped, "goal_pose", self.goals.append, 10)
        self.node.create_subscription(Twist, "cmd_vel", self.cmd_vels.append, 10)
        self.node.create_subscription(MarkerArray, "grounding/markers", self.markers.append, latched)
        self.node.create_subscription(String, "/llm3d_reasoner/status",
                                      lambda m: self.status.update(json.loads(m.data)), latched)
        self.health: dict = {}  # DiagnosticStatus by name, the newest of each (/diagnostics, default QoS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      lambda m: self.health.update((s.name, s) for s in m.status), 10)
        self.pose: tuple[float, float, float] | None = None  # published as TF while spinning
        self._last_tf = 0.0
        self._TFMessage = TFMessage
        self.types = {"Ask": Ask, "Ground": Ground, "Plan": Plan, "NavigateTo": NavigateTo}

    def reasoner_health(self) -> tuple[int, str]:
        """(level, message) of the newest "llm3d_reasoner: inference" diagnostics; (-1, '') before any."""
        s = self.health.get("llm3d_reasoner: inference")
        return (-1, "") if s is None else (ord(s.level), s.message)

    def spin_once(self) -> None:
        if self.pose is not None and time.monotonic() - self._last_tf > 0.05:
            from llm3d_ros.conversions import matrix_to_transform_stamped
            from sim.agent import pose_matrix

            self._last_tf = time.monotonic()
            T = pose_matrix(*self.pose)
            stamp = self.node.get_clock().now().to_msg()
            self.tf.publish(self._TFMessage(transforms=[matrix_to_transform_stamped(T, "map", "base_link", stamp)]))
        self.executor.spin_once(timeout_sec=0.02)

    def spin_until(self, condition, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.node_proc.proc.poll() is not None:
                pytest.fail(f"the reasoner exited with {self.node_proc.proc.returncode} while waiting for {what}:\n"
                            f"{self.node_proc.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s} s waiting for {what}; status {self.status}\n"
                            f"{self.node_proc.output}")
            self.spin_once()

    def spin_for(self, seconds: float) -> None:
        """Keeps publishing TF and spinning (pacing, not waiting for a result)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.spin_once()

    def call(self, client, request, timeout_s: float = 60.0):
        self.spin_until(client.service_is_ready, 60.0, f"service {client.srv_name}")
        future = client.call_async(request)
        self.spin_until(future.done, timeout_s, f"a response from {client.srv_name}")
        return future.result()

    def ask_(self, question: str, session_id: str = ""):
        return self.call(self.ask, self.types["Ask"].Request(question=question, session_id=session_id))

    def send_goal(self, instruction: str, success_distance: float, feedback: list):
        goal = self.types["NavigateTo"].Goal(instruction=instruction, success_distance=success_distance)
        self.spin_until(lambda: self.navigate.server_is_ready(), 30.0, "the navigate_to action server")
        future = self.navigate.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback))
        self.spin_until(future.done, 30.0, "goal acceptance")
        handle = future.result()
        assert handle.accepted
        return handle

    def result(self, handle, timeout_s: float = 60.0):
        future = handle.get_result_async()
        self.spin_until(future.done, timeout_s, "the navigation result")
        return future.result()

    def close(self) -> None:
        self.navigate.destroy()
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def _far_free_pose(map_dir: Path, box: np.ndarray) -> tuple[float, float, float]:
    """A free cell of the map 1.5-3 m from the target box (the robot's start for navigation)."""
    from llm3d_core.mapping.goals import GoalConfig, NavigationMap, box_footprint_distance
    from llm3d_core.mapping.mapper import FeatureFusionMapper

    nav = NavigationMap.from_points(FeatureFusionMapper.load(map_dir, device="cpu").colored_points()[0], GoalConfig())
    cells = np.argwhere(nav.free)
    xy = nav.grid.cell_to_world(cells)
    d = box_footprint_distance(xy, box)
    pick = np.flatnonzero((d > 1.5) & (d < 3.0))
    assert len(pick), "the test map has no free floor 1.5-3 m from the target"
    x, y = xy[pick[len(pick) // 2]]
    return float(x), float(y), 0.0


def test_reasoner_serves_dialog_grounding_plans_and_navigation(assets, tmp_path):
    from action_msgs.msg import GoalStatus

    from llm3d_core.mapping.goals import GoalConfig, NavigationMap, box_footprint_distance
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.messages import quaternion_to_yaw
    from llm3d_ros.conversions import object3d_box

    map_dir = tmp_path / "live_map"  # empty at first: requests before any map must fail cleanly
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.format(map_dir=map_dir, checkpoint=assets["ckpt"]))
    node = NodeProcess(params)
    robot = Robot(node)
    try:
        robot.spin_until(lambda: robot.status.get("model", {}).get("state") == "ready", 90.0, "the model to load")
        assert robot.status["model"]["trained"]
        reply = robot.ask_("What is in the room?")
        assert not reply.success and "no map yet" in reply.message
        # /diagnostics (#23): a ready model without a map warns; OK once the map is loaded.
        robot.spin_until(lambda: robot.reasoner_health()[1].startswith("no map yet"), 10.0, "a no-map warning")
        assert robot.reasoner_health()[0] == WARN

        shutil.copytree(assets["map"], map_dir)  # the mapper's save arrives
        robot.spin_until(lambda: robot.status["map"]["version"], 30.0, "the reasoner to load the map")
        robot.spin_until(lambda: robot.reasoner_health()[0] == OK, 10.0, "OK diagnostics with the map loaded")
        assert robot.reasoner_health()[1].startswith("model ready; map save ")

        # Dialog: a session id comes back and a second turn continues it.
        t0 = time.perf_counter()
        first = robot.ask_("What is in the room?")
        ask_s = time.perf_counter() - t0
        assert first.success, first.message
        assert first.answer == TRAINED_ANSWER and first.session_id
        second = robot.ask_("and the table?", first.session_id)
        assert second.success and second.session_id == first.session_id and second.answer
        print(f"\nask round trip over ROS: {ask_s * 1000:.0f} ms (first), {first.message}")

        # Bad requests: clear refusals, the node keeps serving.
        for question, session, why in (("", "", "empty"), ("x" * 100_000, "", "characters"),
                                       ("hello?", "no-such-session", "unknown or expired session")):
            bad = robot.ask_(question, session)
            assert not bad.success and why in bad.message, bad.message

        # Grounding: boxes in the map frame, the same as map objects, published as markers.
        mapper = FeatureFusionMapper.load(assets["map"], device="cpu")
        boxes = {o.id: np.concatenate([o.box_min, o.box_max]) for o in mapper.objects}
        grounded = robot.call(robot.ground, robot.types["Ground"].Request(query="the table", max_results=3))
        assert grounded.success, grounded.message
        assert grounded.header.frame_id == "map" and 1 <= len(grounded.objects) <= 3
        for obj in grounded.objects:
            assert np.allclose(object3d_box(obj), boxes[obj.id], atol=1e-4)
        robot.spin_until(lambda: robot.markers, 10.0, "grounding markers")
        assert robot.markers[-1].markers[0].action == robot.markers[-1].markers[0].DELETEALL

        plan = robot.call(robot.plan, robot.types["Plan"].Request(instruction="make coffee"))
        assert plan.success and list(plan.steps) == ["go to the counter", "pick up the mug"], plan

        # The client facade the CLI and benchmarks share; round trips measured on a warm node.
        from llm3d_ros.client import Llm3dClient

        with Llm3dClient(server_timeout_s=30.0) as client:
            turns = [client.ask("What is in the room?") for _ in range(5)]
            assert all(t.success and t.answer == TRAINED_ANSWER for t in turns)
            follow = client.ask("and the table?", turns[-1].session_id)
            assert follow.success and follow.session_id == turns[-1].session_id
            evicted = client.ask("and the table?", turns[0].session_id)  # max_sessions 4: the oldest is gone
            assert not evicted.success and "unknown or expired session" in evicted.message
            ground = client.ground("the table", 2)
            assert ground.success and ground.frame_id == "map" and ground.objects[0].id == grounded.objects[0].id
            assert client.plan("make coffee").steps == ["go to the counter", "pick up the mug"]
        print(f"client ask round trip: median {np.median([t.seconds for t in turns]) * 1000:.0f} ms; "
              f"ground {ground.seconds * 1000:.0f} ms")

        # Navigation: a validated goal pose is published, feedback follows the robot, arriving succeeds.
        target_box = boxes[grounded.objects[0].id]
        robot.pose = _far_free_pose(assets["map"], target_box)
        feedback: list = []
        handle = robot.send_goal("the table", 1.0, feedback)
        robot.spin_until(lambda: robot.goals, 30.0, "a goal_pose")
        goal = robot.goals[-1]
        gx, gy = goal.pose.position.x, goal.pose.position.y
        q = goal.pose.orientation
        assert goal.header.frame_id == "map" and all(map(math.isfinite, (gx, gy, q.z, q.w)))
        nav = NavigationMap.from_points(mapper.colored_points()[0], GoalConfig())
        nav.validate(gx, gy, quaternion_to_yaw(q.x, q.y, q.z, q.w))  # free, inside the map
        assert box_footprint_distance(np.array([gx, gy]), target_box)[0] <= 0.75 + 1e-6
        robot.spin_until(lambda: any(f.state == "moving" for f in feedback), 10.0, "moving feedback")
        start_remaining = [f for f in feedback if f.state == "moving"][-1].distance_remaining
        assert start_remaining == pytest.approx(math.dist(robot.pose[:2], (gx, gy)), abs=0.05)
        robot.pose = (gx, gy, 0.0)  # the robot drives there
        done = robot.result(handle)
        assert done.status == GoalStatus.STATUS_SUCCEEDED and done.result.success, done.result.message
        assert "arrived" in done.result.message and done.result.target.id == grounded.objects[0].id

        # Absurd success distances are refused; a cancelled navigation stops the robot.
        for absurd in (1e6, float("nan")):
            refused = robot.result(robot.send_goal("the table", absurd, []))
            assert refused.status == GoalStatus.STATUS_ABORTED and "absurd" in refused.result.message, node.output
        robot.pose = _far_free_pose(assets["map"], target_box)
        robot.spin_for(0.5)  # the robot was at the last goal: let the new TF pose reach the node first
        feedback.clear()
        handle = robot.send_goal("the table", 0.0, feedback)  # 0: the default success distance
        robot.spin_until(lambda: any(f.state == "moving" for f in feedback), 30.0, "moving feedback")
        cancel = handle.cancel_goal_async()
        robot.spin_until(cancel.done, 10.0, "the cancel response")
        cancelled = robot.result(handle)
        assert cancelled.status == GoalStatus.STATUS_CANCELED
        robot.spin_until(lambda: robot.cmd_vels, 10.0, "a stop command on cmd_vel")
        assert robot.cmd_vels[-1].linear.x == 0.0 and robot.cmd_vels[-1].angular.z == 0.0

        again = robot.ask_("What is in the room?")
        assert again.success and node.proc.poll() is None
        robot.spin_until(lambda: robot.status["requests"]["ask"]["count"] >= 13, 5.0, "request counters")
    finally:
        robot.close()
        rc = node.stop()
    assert rc == 0, node.output
    assert "Traceback" not in node.output, node.output


ROBUST_PARAMS = PARAMS + """\
    progress_timeout_s: 3.0
"""


def test_every_request_of_a_burst_gets_a_reply_and_every_navigation_ends(assets, tmp_path):
    """#21: 30 asks at once (one client, and 30 clients) all get a reply — answered with their queue
    position, or "busy, retry in N s"; a navigation ends when the base reports the goal aborted,
    when the robot makes no progress, when a newer goal preempts it, and at shutdown (no traceback)."""
    from action_msgs.msg import GoalStatus
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_ros.conversions import goal_status_array
    from llm3d_ros.qos import service_qos

    params = tmp_path / "params.yaml"
    params.write_text(ROBUST_PARAMS.format(map_dir=assets["map"], checkpoint=assets["ckpt"]))
    node = NodeProcess(params)
    robot = Robot(node)
    Ask = robot.types["Ask"]
    try:
        robot.spin_until(lambda: robot.status.get("map", {}).get("version"), 90.0, "the model and the map")
        # One caller firing 30 requests, then 30 callers with one each, all with the callers' QoS the
        # README asks for (llm3d_ros.qos.service_qos, keep-all): every client's reader receives every
        # reply of the service, and with the default KEEP_LAST 10 a busy process loses its own reply
        # when 10 others arrive before it takes it (a DDS property, not the server's; see qos.py).
        one = robot.node.create_client(Ask, "ask", qos_profile=service_qos())
        many = [robot.node.create_client(Ask, "ask", qos_profile=service_qos()) for _ in range(30)]
        for client in [one, *many]:
            robot.spin_until(client.service_is_ready, 30.0, "the ask service")
            # One reply proves the reply path is matched too: a reply to a client the server has not
            # discovered yet is lost by DDS (llm3d_ros.qos.DISCOVERY_SETTLE_S), which is not what this tests.
            for _ in range(20):
                warm = client.call_async(Ask.Request(question="What is in the room?"))
                end = time.monotonic() + 3.0
                while not warm.done() and time.monotonic() < end:
                    robot.spin_once()
                if warm.done():
                    break
                client.remove_pending_request(warm)
            assert warm.done(), "no reply to a single ask in 60 s"
        for burst in ([(one, i) for i in range(30)], [(c, 0) for c in many]):
            robot.spin_for(1.5)  # a fresh status: the server's count before the burst
            asked_before = robot.status["requests"]["ask"]["count"]
            futures = [c.call_async(Ask.Request(question="What is in the room?")) for c, _ in burst]
            try:
                robot.spin_until(lambda: all(f.done() for f in futures), 120.0, "replies to all 30")
            except pytest.fail.Exception:
                lost = [i for i, f in enumerate(futures) if not f.done()]
                served = robot.status["requests"]["ask"]["count"] - asked_before  # requests the server took
                pytest.fail(f"{len(lost)} of 30 requests got no reply (burst {'one client' if burst[0][0] is one else '30 clients'}; "
                            f"indices {lost}; the server took {served} of the 30); status {robot.status}\n"
                            f"{node.output[-3000:]}")
            replies = [f.result() for f in futures]
            answered = [r for r in replies if r.success]
            refused = [r for r in replies if not r.success]
            assert answered and all(r.answer == TRAINED_ANSWER and "queue position" in r.message for r in answered)
            assert all("busy" in r.message and "retry in" in r.message for r in refused), refused[0].message
            print(f"\nburst of 30: {len(answered)} answered, {len(refused)} refused as busy, 0 lost; "
                  f"e.g. '{answered[-1].message}' / '{refused[-1].message if refused else ''}'")

        mapper = FeatureFusionMapper.load(assets["map"], device="cpu")
        grounded = robot.call(robot.ground, robot.types["Ground"].Request(query="the table", max_results=1))
        box = {o.id: np.concatenate([o.box_min, o.box_max]) for o in mapper.objects}[grounded.objects[0].id]
        robot.pose = _far_free_pose(assets["map"], box)
        robot.spin_for(0.5)
        # As a base publishes its action status (Nav2, the sim bridge): reliable, transient local.
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        status_pub = robot.node.create_publisher(type(goal_status_array([])), "goal_status", latched)

        # The base refuses the goal (as the sim bridge reports a goal in an obstacle): aborted at once.
        robot.goals.clear()
        handle = robot.send_goal("the table", 1.0, [])
        robot.spin_until(lambda: robot.goals, 30.0, "a goal_pose")
        status_pub.publish(goal_status_array([(1, robot.goals[-1].header.stamp, GoalStatus.STATUS_ABORTED)]))
        res = robot.result(handle, 10.0)
        assert res.status == GoalStatus.STATUS_ABORTED and "the base aborted the goal" in res.result.message

        # The robot never moves: aborted for lack of progress (progress_timeout_s 3), with a stop command.
        robot.cmd_vels.clear()
        t0 = time.monotonic()
        res = robot.result(robot.send_goal("the table", 1.0, []), 30.0)
        assert res.status == GoalStatus.STATUS_ABORTED and "no progress" in res.result.message, res.result.message
        assert time.monotonic() - t0 < 15.0
        # The stop is published before the result, but on another topic: DDS orders messages per topic
        # only, so the Twist may reach this process just after the result does.
        robot.spin_until(lambda: robot.cmd_vels, 10.0, "a stop command on cmd_vel")
        assert robot.cmd_vels[-1].linear.x == 0.0 and robot.cmd_vels[-1].angular.z == 0.0

        # A newer goal preempts the running one; the newer one is then cancelled.
        first_feedback: list = []
        first = robot.send_goal("the table", 1.0, first_feedback)
        robot.spin_until(lambda: any(f.state == "moving" for f in first_feedback), 30.0, "moving feedback")
        second_feedback: list = []
        second = robot.send_goal("the chair", 1.0, second_feedback)
        res = robot.result(first, 10.0)
        assert res.status == GoalStatus.STATUS_ABORTED and "preempted" in res.result.message
        assert "the chair" in res.result.message
        robot.spin_until(lambda: second_feedback, 30.0, "feedback of the second goal")
        cancel = second.cancel_goal_async()
        robot.spin_until(cancel.done, 10.0, "the cancel response")
        assert robot.result(second, 10.0).status == GoalStatus.STATUS_CANCELED

        # Shutdown with a goal still active: a clean exit, no traceback.
        active_feedback: list = []
        robot.send_goal("the table", 1.0, active_feedback)
        robot.spin_until(lambda: any(f.state == "moving" for f in active_feedback), 30.0, "moving feedback")
    finally:
        robot.close()
        rc = node.stop()
    assert rc == 0, node.output
    assert "Traceback" not in node.output and "RCLError" not in node.output, node.output
    assert "shutting down" in node.output  # the goal active at Ctrl-C ended


def test_corrupt_checkpoint_answers_with_a_clear_error(assets, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(assets["ckpt"], ckpt)
    (ckpt / "model.safetensors").write_bytes(b"not a safetensors file")
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.format(map_dir=assets["map"], checkpoint=ckpt))
    node = NodeProcess(params)
    robot = Robot(node)
    try:
        robot.spin_until(lambda: robot.status.get("model", {}).get("state") == "failed", 90.0, "the model load to fail")
        robot.spin_until(lambda: robot.reasoner_health()[0] == ERROR, 10.0, "ERROR diagnostics")
        assert "could not be loaded" in robot.reasoner_health()[1]
        reply = robot.ask_("What is in the room?")
        assert not reply.success and "could not be loaded" in reply.message and "model.safetensors" in reply.message
        assert node.proc.poll() is None
    finally:
        robot.close()
        rc = node.stop()
    assert rc == 0, node.output


def test_cli_without_a_stack_times_out_with_a_clear_message(capsys):
    from llm3d_cli.main import main as llm3d_main

    assert llm3d_main(["plan", "make coffee", "--server-timeout", "0.5"]) == 3
    assert "is the stack running" in capsys.readouterr().err
    assert llm3d_main(["ask", "--task", "ground", "the mug"]) == 2  # other tasks need --map (offline)
