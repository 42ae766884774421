"""Configuration of the `llm3d_sim_bridge` node (its `ros__parameters` section in launch/llm3d.yaml).

No rclpy here: the CLI and tests build and validate it from the YAML file alone. The `sim:`
mapping is the simulator's own `sim.config.SimConfig`, the same one `llm3d sim render|explore`
read, so the bridge renders exactly what the offline tools render.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from llm3d_core.camera_streams import CameraStreamsConfig
from llm3d_core.config import require_non_empty
from sim.config import SimConfig
from sim.follow import FollowConfig

# The first seed of the test split (sim.scenes.scene.SPLITS["test"].start), written out so that
# reading the config does not import the scene module (trimesh); a test checks they agree.
DEFAULT_SCENE_SEED = 11000
DEPTH_ENCODINGS = ("16UC1", "32FC1")
MAP_TO_ODOM = ("ground_truth", "identity")


@dataclass
class SimBridgeConfig(CameraStreamsConfig):
    """Parameters of the sim bridge node; `sim` is the simulator's SimConfig, unchanged.

    Fields:
        scene_seed: procedural scene to load (any seed of the train/val/test splits); default the
            first test-split seed, so a demo never runs on a training scene.
        scene_file: a scene annotation .json (or mesh file) to load instead; '' uses scene_seed.
        rate_hz: simulation and publication rate (images, depth, camera info, TF, odometry).
            The robot moves by the wall-clock time between ticks, so a slow render slows the
            frame rate, not the robot.
        map_frame, odom_frame, base_frame: REP-105 frames; TF map -> odom -> base_link.
        camera_frame: the camera's optical frame (x right, y down, z forward), child of
            base_frame on /tf_static; it is also every image's header.frame_id.
        color_topic, depth_topic, camera_info_topic: sensor outputs, relative names matching the
            mapper's defaults. Colour is rgb8.
        depth_encoding: '16UC1' (integer units of 1/depth_scale m, 0 = no return; half the bytes
            of 32FC1 and what RGB-D drivers send) or '32FC1' (metres, REP 118).
        depth_scale: 16UC1 units per metre; must equal the mapper's depth_scale.
        odom_topic: nav_msgs/Odometry of base_frame in odom_frame (pose and achieved twist).
        map_to_odom: 'ground_truth' publishes the correction a perfect localiser would (map ->
            base_link is the true pose, odom -> base_link drifts when agent drift is on);
            'identity' publishes an identity map -> odom, so consumers see the drifting odometry
            as the map pose (to test robustness to drift). Without drift both are identical.
        cmd_vel_topic: geometry_msgs/Twist; linear.x and angular.z drive the robot, clipped to
            max_linear_speed / max_angular_speed. A command cancels an active goal (manual override).
        cmd_vel_timeout_s: the robot stops when no cmd_vel arrived for this long (a dead teleop
            or planner must not leave it driving).
        goal_topic: geometry_msgs/PoseStamped in map_frame (the Nav2 `goal_pose` convention).
        follow_goals: drive to goals on goal_topic along the shortest path; turn off when Nav2
            (or any other planner) runs and drives cmd_vel itself.
        goal_status_topic: action_msgs/GoalStatusArray of the goal being followed (transient
            local): EXECUTING, SUCCEEDED, ABORTED (unreachable, refused, stuck) or CANCELED (cmd_vel
            took over), stamped with the goal_pose's stamp; the reasoner aborts a navigation the
            base gave up on (Nav2 reports the same on /navigate_to_pose/_action/status).
        goal_tolerance: metres; a goal position within this counts as reached.
        max_linear_speed: m/s, limit for cmd_vel and for goal following.
        max_angular_speed: rad/s, limit for cmd_vel and for goal following.
        scene_topic: std_msgs/String with the ground-truth scene annotations (JSON, the
            `Scene.to_dict()` schema of sim.scenes.scene), published once, transient local, so
            clients and benchmarks can score against it.
        status_topic: std_msgs/String JSON (frames, achieved rate, goal state, errors).
        status_period_s: seconds between status messages.
        diagnostics_topic: diagnostic_msgs/DiagnosticArray with this node's health (level, message,
            the status as key/values; rules in llm3d_ros.diagnostics), published with every status.
            Absolute '/diagnostics' by default: one topic per ROS graph, where rqt_robot_monitor and
            diagnostic_aggregator look (under a namespace the status name carries it). '' = off.
        diagnostics_window_s: counters (errors, drops, rates) are judged over the last this many seconds.
        min_rate_ratio: diagnostics WARN when the achieved rate falls below this share of rate_hz
            (0 = never).
        warn_period_s: a warning about the same kind of bad input is logged at most this often
            (every occurrence is counted in the status).
        sim: the simulator's configuration (sim.config.SimConfig: scene, render, agent, ...).
    """

    scene_seed: int = DEFAULT_SCENE_SEED
    scene_file: str = ""
    rate_hz: float = 10.0
    map_frame: str = "map"
    odom_frame: str = "odom"
    base_frame: str = "base_link"
    camera_frame: str = "camera_color_optical_frame"
    depth_encoding: str = "16UC1"
    odom_topic: str = "odom"
    map_to_odom: str = "ground_truth"
    cmd_vel_topic: str = "cmd_vel"
    cmd_vel_timeout_s: float = 0.5
    goal_topic: str = "goal_pose"
    follow_goals: bool = True
    goal_status_topic: str = "goal_status"
    goal_tolerance: float = 0.2
    max_linear_speed: float = 0.5
    max_angular_speed: float = 1.0
    scene_topic: str = "sim/scene"
    status_topic: str = "~/status"
    status_period_s: float = 1.0
    diagnostics_topic: str = "/diagnostics"
    diagnostics_window_s: float = 10.0
    min_rate_ratio: float = 0.8
    warn_period_s: float = 5.0
    sim: SimConfig = field(default_factory=SimConfig)

    def __post_init__(self) -> None:
        super().__post_init__()  # the camera topics and depth_scale
        for name in ("map_frame", "odom_frame", "base_frame", "camera_frame", "odom_topic", "cmd_vel_topic", "goal_topic",
                     "goal_status_topic", "scene_topic", "status_topic"):
            require_non_empty(name, getattr(self, name))
        frames = [self.map_frame, self.odom_frame, self.base_frame, self.camera_frame]
        if len(set(frames)) != len(frames):
            raise ValueError(f"map_frame, odom_frame, base_frame and camera_frame must differ, got {frames}")
        if not isinstance(self.scene_file, str):
            raise ValueError(f"scene_file must be a string ('' = use scene_seed), got {self.scene_file!r}")
        if not self.scene_file:
            from sim.scenes.scene import split_of  # lazy: the scene module imports trimesh

            split_of(self.scene_seed)  # ValueError naming the seed and the split ranges
        if not (_finite(self.rate_hz) and 0 < self.rate_hz <= 60):
            raise ValueError(f"rate_hz must be in (0, 60], got {self.rate_hz!r}")
        if self.depth_encoding not in DEPTH_ENCODINGS:
            raise ValueError(f"depth_encoding must be one of {DEPTH_ENCODINGS}, got {self.depth_encoding!r}")
        if self.depth_encoding == "16UC1" and self.sim.render.far * self.depth_scale > 65534:
            raise ValueError(f"depth_scale {self.depth_scale} cannot hold sim.render.far = {self.sim.render.far} m "
                             "in 16UC1 (max 65534 units); lower one of them or use depth_encoding 32FC1")
        if self.map_to_odom not in MAP_TO_ODOM:
            raise ValueError(f"map_to_odom must be one of {MAP_TO_ODOM}, got {self.map_to_odom!r}")
        if not isinstance(self.follow_goals, bool):
            raise ValueError(f"follow_goals must be true or false, got {self.follow_goals!r}")
        for name in ("cmd_vel_timeout_s", "goal_tolerance", "max_linear_speed", "max_angular_speed", "status_period_s",
                     "diagnostics_window_s"):
            value = getattr(self, name)
            if not (_finite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not isinstance(self.diagnostics_topic, str):
            raise ValueError(f"diagnostics_topic must be a string ('' = off), got {self.diagnostics_topic!r}")
        if not (_finite(self.min_rate_ratio) and 0 <= self.min_rate_ratio <= 1):
            raise ValueError(f"min_rate_ratio must be in [0, 1], got {self.min_rate_ratio!r}")
        if not (_finite(self.warn_period_s) and self.warn_period_s >= 0):
            raise ValueError(f"warn_period_s must be a finite number >= 0, got {self.warn_period_s!r}")
        self.follow_config()  # FollowConfig validates the speeds and tolerance together

    def follow_config(self) -> FollowConfig:
        """The path follower's configuration (its other fields keep their tuned defaults)."""
        return FollowConfig(goal_tolerance=self.goal_tolerance, max_linear=self.max_linear_speed,
                            max_angular=self.max_angular_speed)

    def scene_source(self) -> int | str:
        """What Simulator.load() takes: the scene file when set, else the seed."""
        return self.scene_file or self.scene_seed


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
