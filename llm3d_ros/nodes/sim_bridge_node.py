"""`llm3d_sim_bridge`: the built-in simulator as a ROS 2 robot (an RGB-D camera on a differential drive).

A thin adapter around `sim.simulator.Simulator` and `sim.follow.PathFollower`: it declares
parameters (`SimBridgeConfig`), converts messages (`llm3d_ros.conversions`) and
publishes. The simulation runs in its own thread at
`rate_hz`: the EGL renderer's context belongs to the thread that created it, and the executor
stays free for cmd_vel and goals while a frame renders.

Interfaces (names relative to the node's namespace; all configurable):
    publishes   camera/color/image_raw     sensor_msgs/Image (rgb8)        best effort, depth 2
                camera/depth/image_raw     sensor_msgs/Image (16UC1|32FC1) best effort, depth 2
                camera/color/camera_info   sensor_msgs/CameraInfo          best effort, depth 2
                odom                       nav_msgs/Odometry               reliable, depth 10
                /tf                        tf2_msgs/TFMessage  map -> odom -> base_link    reliable, depth 100
                /tf_static                 tf2_msgs/TFMessage  base_link -> camera frame   reliable, transient local
                sim/scene                  std_msgs/String (scene JSON, once)              reliable, transient local
                ~/status                   std_msgs/String (JSON)          reliable, transient local
                /diagnostics               diagnostic_msgs/DiagnosticArray "llm3d_sim_bridge: simulation", with
                                           every status (llm3d_ros.diagnostics; diagnostics_topic)
    subscribes  cmd_vel                    geometry_msgs/Twist             best effort, depth 1 (matches any publisher)
                goal_pose                  geometry_msgs/PoseStamped (map) reliable, depth 10 (only with follow_goals)
    publishes   goal_status                action_msgs/GoalStatusArray     reliable, transient local (with follow_goals):
                                           the followed goal, stamped with its goal_pose stamp: EXECUTING,
                                           SUCCEEDED, ABORTED (refused, unreachable, stuck) or CANCELED (cmd_vel)

Driving: the last writer wins. A cmd_vel message drives the robot (linear.x, angular.z, clipped
to the speed limits) and cancels an active goal; without a new one for cmd_vel_timeout_s the
robot stops. A goal_pose is planned on the simulator's navigation grid and followed until it is
reached or fails; it replaces an earlier goal and any cmd_vel still in effect. Every motion is
collision-checked by the agent (it stops before a wall; collisions are counted). A bad cmd_vel or
goal (non-finite, wrong frame, outside the map, in an obstacle, unreachable) is counted, logged
at most every warn_period_s per kind, and ignored: the robot keeps doing what it did. A goal the
bridge refuses is reported ABORTED on goal_status, so whoever sent it knows it will not be driven.

Status (`~/status`, JSON, every status_period_s):
    {"node": "llm3d_sim_bridge", "stamp": <s>, "scene": "<scene_id>", "frames": n, "rate_hz": x,
     "mode": "idle" | "cmd_vel" | "goal",
     "pose": {"x": m, "y": m, "yaw": rad},          # ground truth, in map_frame
     "goal": {"state": "idle|active|reached|failed", "message": "...", "remaining_m": x},
     "collisions": n, "received": {"cmd_vel": n, "goal": n},
     "errors": {"bad_cmd_vel": n, "bad_goal": n, "step_failed": n}}
"""

from __future__ import annotations

import json
import sys
import threading
import time
from functools import partial

from llm3d_ros.env import apply_ros_environment

# rcl checks RMW_IMPLEMENTATION when its library loads, i.e. on `import rclpy`: set it first.
apply_ros_environment(localhost=False)

from action_msgs.msg import GoalStatus, GoalStatusArray  # noqa: E402
from geometry_msgs.msg import PoseStamped, Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from llm3d_core.config import ConfigError  # noqa: E402
from llm3d_ros.conversions import (  # noqa: E402
    ConversionError,
    camera_info_from_K,
    depth_to_image,
    goal_from_pose_stamped,
    goal_status_array,
    matrix_to_transform_stamped,
    numpy_to_image,
    odometry_msg,
    twist_to_command,
)
from llm3d_ros.diagnostics import SIM_BRIDGE_COMPONENT, DiagnosticsPublisher, sim_bridge_diagnosis  # noqa: E402
from llm3d_ros.nodes.common import BadInputs  # noqa: E402
from llm3d_ros.nodes.sim_bridge_config import SimBridgeConfig  # noqa: E402
from llm3d_ros.qos import latched_qos, reliable_qos, sensor_qos  # noqa: E402
from llm3d_ros.nodes.run import run_node  # noqa: E402
from llm3d_ros.parameters import declare_config_parameters, read_config_parameters  # noqa: E402
from sim.follow import ACTIVE, FAILED, REACHED, GoalError, PathFollower  # noqa: E402
from sim.simulator import Simulator  # noqa: E402

NODE_NAME = "llm3d_sim_bridge"
ERROR_KINDS = ("bad_cmd_vel", "bad_goal", "step_failed")
SENSOR_QOS = sensor_qos(2)
LATCHED_QOS = latched_qos(1)
TF_QOS = reliable_qos(100)
ODOM_QOS = reliable_qos(10)
# Best effort, newest only: it matches reliable and best-effort publishers alike (teleop, Nav2).
CMD_VEL_QOS = sensor_qos(1)
GOAL_QOS = reliable_qos(10)
MAX_STEP_S = 0.5  # a stall longer than this (a slow render, a debugger) does not teleport the robot
GOALS_REPORTED = 4  # goals listed on goal_status (the newest ones)
# Follower state -> action_msgs GoalStatus; "idle" after a goal means cmd_vel cancelled it.
GOAL_STATUS = {ACTIVE: GoalStatus.STATUS_EXECUTING, REACHED: GoalStatus.STATUS_SUCCEEDED,
               FAILED: GoalStatus.STATUS_ABORTED, "idle": GoalStatus.STATUS_CANCELED}


class SceneLoadError(RuntimeError):
    """The configured scene could not be loaded or rendered; the node cannot start."""


class SimBridgeNode(Node):
    """The sim bridge node; `start()` loads the scene in the simulation thread, `stop()` joins it."""

    def __init__(self, **node_kwargs) -> None:
        # Every key of the params file becomes a parameter, so typos reach config_from_dict and
        # fail loudly instead of being ignored as undeclared overrides.
        super().__init__(NODE_NAME, automatically_declare_parameters_from_overrides=True, **node_kwargs)
        declare_config_parameters(self, SimBridgeConfig())
        self.cfg = read_config_parameters(self, SimBridgeConfig)
        cfg = self.cfg

        self._lock = threading.Lock()  # guards the inputs and counters below (executor <-> sim thread)
        self._cmd: tuple[float, float] | None = None  # (v, omega) of the last cmd_vel
        self._cmd_time = 0.0  # time.monotonic() of the last cmd_vel
        self._pending_goal: tuple[float, float, float | None] | None = None
        self._pending_goal_stamp = None  # its header stamp, reported back on goal_status
        # goal_status (simulation thread): the last few goals, number -> [stamp, GoalStatus], and
        # the number of the one the follower drives to.
        self._goal_number = 0
        self._goals: dict[int, list] = {}
        self._following: int | None = None
        self._received = {"cmd_vel": 0, "goal": 0}
        self._bad_inputs = BadInputs(ERROR_KINDS, self.cfg.warn_period_s, self.get_logger().warning)
        self._achieved = (0.0, 0.0)  # (v, omega) of the last step, for odometry (simulation thread)

        self._stop = threading.Event()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="llm3d_sim_bridge_sim", daemon=True)

        self._color_pub = self.create_publisher(Image, cfg.color_topic, SENSOR_QOS)
        self._depth_pub = self.create_publisher(Image, cfg.depth_topic, SENSOR_QOS)
        self._info_pub = self.create_publisher(CameraInfo, cfg.camera_info_topic, SENSOR_QOS)
        self._odom_pub = self.create_publisher(Odometry, cfg.odom_topic, ODOM_QOS)
        self._tf_pub = self.create_publisher(TFMessage, "/tf", TF_QOS)
        self._tf_static_pub = self.create_publisher(TFMessage, "/tf_static", LATCHED_QOS)
        self._scene_pub = self.create_publisher(String, cfg.scene_topic, LATCHED_QOS)
        self._status_pub = self.create_publisher(String, cfg.status_topic, LATCHED_QOS)
        self._diagnostics = DiagnosticsPublisher(
            self, cfg.diagnostics_topic, SIM_BRIDGE_COMPONENT,
            partial(sim_bridge_diagnosis, requested_hz=cfg.rate_hz, min_rate_ratio=cfg.min_rate_ratio),
            cfg.diagnostics_window_s)
        self.create_subscription(Twist, cfg.cmd_vel_topic, self._on_cmd_vel, CMD_VEL_QOS)
        self._goal_status_pub = None
        if cfg.follow_goals:
            self.create_subscription(PoseStamped, cfg.goal_topic, self._on_goal, GOAL_QOS)
            self._goal_status_pub = self.create_publisher(GoalStatusArray, cfg.goal_status_topic, LATCHED_QOS)

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = 120.0) -> None:
        """Starts the simulation thread and waits until the scene is loaded; raises SceneLoadError."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise SceneLoadError(f"the scene did not load within {timeout_s:.0f} s")
        if self._start_error is not None:
            raise SceneLoadError(f"cannot load scene {self.cfg.scene_source()!r}: {self._start_error}")

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    # ------------------------------------------------------------ callbacks (executor thread; cheap)
    def _on_cmd_vel(self, msg: Twist) -> None:
        with self._lock:
            self._received["cmd_vel"] += 1
        try:
            command = twist_to_command(msg, self.cfg.max_linear_speed, self.cfg.max_angular_speed)
        except ConversionError as err:
            self._bad("bad_cmd_vel", f"ignoring cmd_vel: {err}")
            return
        with self._lock:
            self._cmd, self._cmd_time = command, time.monotonic()
            self._pending_goal = None  # the last writer wins: teleop takes over from a goal

    def _on_goal(self, msg: PoseStamped) -> None:
        with self._lock:
            self._received["goal"] += 1
        try:
            goal = goal_from_pose_stamped(msg, self.cfg.map_frame)
        except ConversionError as err:
            self._bad("bad_goal", f"ignoring goal: {err}")
            return
        with self._lock:
            self._pending_goal = goal  # planned in the simulation thread, which owns the grid
            self._pending_goal_stamp = msg.header.stamp

    # ------------------------------------------------------------ simulation thread
    def _run(self) -> None:
        sim: Simulator | None = None
        try:
            sim = Simulator(self.cfg.sim)
            scene = sim.load(self.cfg.scene_source())
            follower = PathFollower(sim.grid, self.cfg.follow_config())
            sim.observe()  # one render now: a broken renderer fails the start, not the first tick
        except Exception as err:  # reported by start(); the node exits with a message
            self._start_error = err
            self._ready.set()
            if sim is not None:
                sim.close()
            return
        try:
            self._publish_static(sim, scene)
            self._ready.set()
            self.get_logger().info(
                f"simulating scene '{scene.scene_id}' ({len(scene.instances)} objects) at {self.cfg.rate_hz:g} Hz, "
                f"{sim.config.render.width}x{sim.config.render.height}, renderer {type(sim.renderer).__name__}; "
                f"robot at ({sim.agent.x:.2f}, {sim.agent.y:.2f})")
            self._loop(sim, scene.scene_id, follower)
        finally:
            sim.close()

    def _loop(self, sim: Simulator, scene_id: str, follower: PathFollower) -> None:
        period = 1.0 / self.cfg.rate_hz
        last = next_tick = time.monotonic()
        frames, window_start, window_frames = 0, last, 0
        last_status = -1e9
        mode = "idle"
        while not self._stop.is_set():
            now = time.monotonic()
            dt, last = min(now - last, MAX_STEP_S), now
            frames += 1
            window_frames += 1
            try:
                mode = self._drive(sim, follower, dt)
                self._publish_frame(sim, sim.observe())
                if now - last_status >= self.cfg.status_period_s:
                    rate = (window_frames - 1) / (now - window_start) if window_frames > 1 else 0.0
                    self._publish_status(sim, scene_id, follower, frames, rate, mode)
                    last_status, window_start, window_frames = now, now, 1
            except Exception as err:  # a fault in one step must not take the node down
                if not self.context.ok():
                    break  # SIGINT shut the context down under us: the node is stopping, not failing
                self._bad("step_failed", f"simulation step failed: {err!r}")
            # Fixed-rate schedule; after an overrun start afresh instead of bursting to catch up.
            next_tick += period
            if next_tick < time.monotonic():
                next_tick = time.monotonic()
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def _drive(self, sim: Simulator, follower: PathFollower, dt: float) -> str:
        """Applies the newest goal or cmd_vel and moves the robot by dt; returns the driving mode."""
        with self._lock:
            goal, self._pending_goal = self._pending_goal, None
            goal_stamp = self._pending_goal_stamp
            cmd, cmd_fresh = self._cmd, time.monotonic() - self._cmd_time <= self.cfg.cmd_vel_timeout_s
        agent = sim.agent
        if goal is not None:
            self._goal_number += 1
            previous = self._following if follower.state == ACTIVE else None
            try:
                path = follower.set_goal(agent.position, goal[:2], goal[2])
            except GoalError as err:
                self._bad("bad_goal", f"ignoring goal: {err}")
                # Refused: reported, so the sender does not wait for it; an earlier goal goes on.
                self._set_goal_status(self._goal_number, goal_stamp, GoalStatus.STATUS_ABORTED)
            else:
                if previous is not None:  # replaced by the newer goal
                    self._set_goal_status(previous, None, GoalStatus.STATUS_CANCELED)
                self._following = self._goal_number
                self._set_goal_status(self._goal_number, goal_stamp, GoalStatus.STATUS_EXECUTING)
                self.get_logger().info(f"goal ({goal[0]:.2f}, {goal[1]:.2f}) accepted: {follower.message} "
                                       f"({len(path)} waypoints)")
                with self._lock:
                    if self._cmd is cmd:  # a cmd_vel that arrived meanwhile is newer and stays
                        self._cmd = cmd = None
        elif cmd is not None and cmd_fresh and follower.state == ACTIVE:
            follower.cancel("cancelled by cmd_vel")
            self.get_logger().info("goal cancelled: cmd_vel took over")

        if cmd is not None and cmd_fresh:
            mode, (v, omega) = "cmd_vel", cmd
        elif follower.state == ACTIVE:
            mode, (v, omega) = "goal", follower.command(agent.x, agent.y, agent.yaw, dt)
            if follower.state != ACTIVE:
                self.get_logger().info(f"goal {follower.state}: {follower.message}")
        else:
            mode, v, omega = "idle", 0.0, 0.0  # includes a cmd_vel that timed out: stop
        if self._following is not None:
            self._set_goal_status(self._following, None, GOAL_STATUS[follower.state])
        step = agent.velocity(v, omega, dt)  # finite by construction (converters reject NaN)
        sim.last_step = step
        # Odometry reports what happened: a robot held by a wall reports no forward speed.
        self._achieved = ((step.distance if v >= 0 else -step.distance) / dt if dt > 0 else 0.0, omega)
        return mode

    # ------------------------------------------------------------ publishing (simulation thread)
    def _set_goal_status(self, number: int, stamp, status: int) -> None:
        """Records a goal's status (stamp None: keep the recorded one); publishes goal_status on a change."""
        entry = self._goals.get(number)
        if self._goal_status_pub is None or (entry is not None and entry[1] == status):
            return
        if entry is None:
            self._goals[number] = entry = [stamp, status]
            for old in list(self._goals)[:-GOALS_REPORTED]:
                del self._goals[old]
        entry[1] = status
        self._goal_status_pub.publish(goal_status_array((n, st, code) for n, (st, code) in self._goals.items()))

    def _publish_static(self, sim: Simulator, scene) -> None:
        cfg = self.cfg
        self._tf_static_pub.publish(TFMessage(transforms=[matrix_to_transform_stamped(
            sim.agent.T_base_camera, cfg.base_frame, cfg.camera_frame, self.get_clock().now().to_msg())]))
        self._scene_pub.publish(String(data=json.dumps(scene.to_dict())))

    def _publish_frame(self, sim: Simulator, obs: dict) -> None:
        cfg, agent = self.cfg, sim.agent
        stamp = self.get_clock().now().to_msg()
        T_map_odom = agent.T_world_odom() if cfg.map_to_odom == "ground_truth" else None
        transforms = [matrix_to_transform_stamped(agent.T_odom_base(), cfg.odom_frame, cfg.base_frame, stamp)]
        transforms.insert(0, matrix_to_transform_stamped(T_map_odom, cfg.map_frame, cfg.odom_frame, stamp)
                          if T_map_odom is not None else _identity_transform(cfg.map_frame, cfg.odom_frame, stamp))
        # TF first: the mapper looks the camera pose up at the images' stamp as soon as they arrive.
        self._tf_pub.publish(TFMessage(transforms=transforms))
        h, w = obs["depth"].shape
        self._info_pub.publish(camera_info_from_K(obs["K"], w, h, cfg.camera_frame, stamp))
        self._color_pub.publish(numpy_to_image(obs["rgb"], "rgb8", cfg.camera_frame, stamp))
        self._depth_pub.publish(depth_to_image(obs["depth"], cfg.depth_encoding, cfg.depth_scale, cfg.camera_frame,
                                               stamp))
        v, omega = self._achieved
        self._odom_pub.publish(odometry_msg(agent.T_odom_base(), v, omega, cfg.odom_frame, cfg.base_frame, stamp))

    def _publish_status(self, sim: Simulator, scene_id: str, follower: PathFollower, frames: int, rate: float,
                        mode: str) -> None:
        agent = sim.agent
        with self._lock:
            received = dict(self._received)
        errors = self._bad_inputs.counts()
        status = {
            "node": self.get_name(), "stamp": self.get_clock().now().nanoseconds * 1e-9, "scene": scene_id,
            "frames": frames, "rate_hz": round(rate, 2), "mode": mode,
            "pose": {"x": round(agent.x, 4), "y": round(agent.y, 4), "yaw": round(agent.yaw, 4)},
            "goal": {"state": follower.state, "message": follower.message,
                     "remaining_m": round(follower.remaining(agent.position), 3)},
            "collisions": agent.collisions, "received": received, "errors": errors,
        }
        self._status_pub.publish(String(data=json.dumps(status)))
        self._diagnostics.publish(status, hardware_id=f"simulator ({type(sim.renderer).__name__})")

    # ------------------------------------------------------------ helpers
    def _bad(self, kind: str, message: str) -> None:
        """Counts a bad input of `kind`; logs it at most every warn_period_s per kind."""
        self._bad_inputs.add(kind, message, self.get_clock().now().nanoseconds * 1e-9)


def _identity_transform(parent: str, child: str, stamp):
    from geometry_msgs.msg import TransformStamped

    msg = TransformStamped(child_frame_id=child)
    msg.header.frame_id, msg.header.stamp = parent, stamp
    msg.transform.rotation.w = 1.0
    return msg


def main(argv: list[str] | None = None) -> int:
    """Runs the node until SIGINT/SIGTERM; exit code 2 for invalid parameters or an unloadable scene."""

    def describe(err: BaseException) -> str:
        if isinstance(err, (ConfigError, SceneLoadError)):
            return str(err)
        # rclpy refuses overrides it cannot type, e.g. an empty list `[]` in the params file.
        return (f"invalid parameters: {err} (an empty list `[]` is not a valid ROS parameter value; "
                "leave the key out for its default)")

    return run_node(SimBridgeNode, NODE_NAME, argv, fatal=(ConfigError, SceneLoadError, ValueError), describe=describe)

if __name__ == "__main__":
    sys.exit(main())
