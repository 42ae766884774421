"""`llm3d demo --ros`: the demo's episode through the ROS 2 stack instead of in one process.

What `llm3d demo` does in-process (llm3d_bench.demo), here through the nodes a robot runs:

1. `llm3d bringup --sim` starts the sim bridge (on the demo's held-out scene), the mapper and the
   reasoner as separate processes, with launch/llm3d.yaml (or --config) patched only where the
   demo must: the scene seed, the render size, the map folder and the checkpoint (params.yaml in
   the output folder records what ran).
2. Exploration: the frontier explorer's route for the scene is planned once in this process (the
   same explorer and start pose `llm3d demo` uses, on a local simulator that publishes nothing),
   cut into waypoints, and driven through `goal_pose` (geometry_msgs/PoseStamped, the Nav2
   convention) by the sim bridge's path follower. The mapper fuses what the camera streams while
   the robot drives. On a real robot this step is the user's teleoperation or Nav2 exploration.
3. Requests go through `Llm3dClient` (services ask, ground, plan; action navigate_to), the same
   client the CLI and the benchmark use; the reasoner's navigation goal is driven by the bridge.
4. Scoring uses the scene's annotations and llm3d_bench.demo's record helpers, so the numbers mean what
   `llm3d demo`'s mean; llm3d_bench.report draws the report from the map the mapper saved.

The robot's pose comes from /tf (map -> odom -> base_link), as any ROS consumer reads it.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from llm3d_core.config import require_non_negative, require_positive
from llm3d_core.reasoner import Grounded, ReasonerError
from llm3d_ros.view_input import from_camera_view

if TYPE_CHECKING:
    from llm3d_ros.client import Llm3dClient
    from llm3d_bench.demo import DemoConfig, DemoResult, NavigationResult

log = logging.getLogger(__name__)


@dataclass
class RosDemoConfig:
    """How the ROS episode is driven.

    Fields:
        waypoint_spacing: metres of the explorer's route between two goal_pose waypoints.
        waypoint_timeout_s: a waypoint not reached in this long is skipped (the follower may
            refuse one in a doorway; the tour goes on).
        startup_timeout_s: for the stack's processes to come up and the first TF to arrive.
        map_timeout_s: after the tour, for the reasoner to hold a map (it asks the mapper to save
            every map_refresh_period_s).
        settle_s: after the tour, for the last frames to be fused and saved before requests start.
        request_timeout_s: per service call; navigation gets the demo's max_drive_s on top.
        thumbnail_period_s: seconds between first-person frames kept for the report.
    """

    waypoint_spacing: float = 0.75
    waypoint_timeout_s: float = 40.0
    startup_timeout_s: float = 180.0
    map_timeout_s: float = 120.0
    settle_s: float = 8.0
    request_timeout_s: float = 120.0
    thumbnail_period_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("waypoint_spacing", "waypoint_timeout_s", "startup_timeout_s", "map_timeout_s",
                     "request_timeout_s", "thumbnail_period_s"):
            require_positive(name, getattr(self, name))
        require_non_negative("settle_s", self.settle_s)


# ---------------------------------------------------------------------- planning (no ROS)
def route_waypoints(path_xy: np.ndarray, spacing: float) -> list[tuple[float, float, float]]:
    """(x, y, yaw) every `spacing` metres along a driven route, facing along it; the last point included.

    path_xy (T, 2). Points where the route turns in place (no progress) add no waypoint.
    """
    path = np.asarray(path_xy, dtype=np.float64).reshape(-1, 2)
    if len(path) < 2:
        return []
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)  # (T-1,)
    along = np.concatenate([[0.0], np.cumsum(steps)])  # (T,)
    if along[-1] < 1e-6:
        return []
    marks = list(np.arange(spacing, along[-1], spacing)) + [along[-1]]
    out = []
    for m in marks:
        i = int(np.searchsorted(along, m))
        i = min(max(i, 1), len(path) - 1)
        d = path[i] - path[i - 1]
        yaw = math.atan2(d[1], d[0]) if np.linalg.norm(d) > 1e-9 else (out[-1][2] if out else 0.0)
        out.append((float(path[i, 0]), float(path[i, 1]), yaw))
    return out


def write_params(base_yaml: Path, out: Path, seed: int, cfg: "DemoConfig", checkpoint: str) -> Path:
    """launch/llm3d.yaml (or the given file) with the demo's scene, render size, map folder and
    checkpoint, written as out/params.yaml."""
    import yaml

    from sim.datagen.maps import map_sim_config

    data = yaml.safe_load(base_yaml.read_text()) or {}
    params = {name: data.setdefault(name, {}).setdefault("ros__parameters", {})
              for name in ("llm3d_sim_bridge", "llm3d_mapper", "llm3d_reasoner")}
    bridge = params["llm3d_sim_bridge"]
    bridge["scene_seed"] = int(seed)
    bridge["scene_file"] = ""
    render = map_sim_config(width=cfg.width, height=cfg.height).render
    sim = bridge.setdefault("sim", {})
    sim.setdefault("render", {}).update({k: v for k, v in {"width": render.width, "height": render.height,
                                                             "fx": render.fx, "fy": render.fy, "cx": render.cx,
                                                             "cy": render.cy}.items() if v is not None})
    map_dir = str((out / "map").resolve())
    params["llm3d_mapper"]["map_path"] = map_dir
    params["llm3d_mapper"]["resume"] = False
    params["llm3d_reasoner"]["map_dir"] = map_dir
    params["llm3d_reasoner"]["checkpoint"] = checkpoint or ""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---------------------------------------------------------------------- the client as a reasoner
class ClientReasoner:
    """`Llm3dClient` behind the reasoner's methods, so llm3d_bench.demo's record helpers score it unchanged."""

    def __init__(self, client: "Llm3dClient", timeout_s: float) -> None:
        self.client, self.timeout_s = client, timeout_s

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        """A client call; no reply within timeout_s is this request's error (recorded), not the demo's end."""
        try:
            return method(*args, timeout_s=self.timeout_s)
        except TimeoutError as err:
            raise ReasonerError(str(err)) from err

    def ask(self, question: str, session_id: str = "") -> tuple[str, str]:
        reply = self._call(self.client.ask, question, session_id)
        if not reply.success:
            raise ReasonerError(reply.message)
        return reply.answer, reply.session_id

    def ground(self, query: str, max_results: int = 0) -> list[Grounded]:
        reply = self._call(self.client.ground, query, max_results)
        if not reply.success:
            raise ReasonerError(reply.message)
        if from_camera_view(reply.message):  # boxes in the camera frame cannot be scored in the map's
            raise ReasonerError(f"answered about the camera view, not the map: {reply.message}")
        return [Grounded(o.id, o.label, o.score, np.asarray(o.box, dtype=np.float64), "ros") for o in reply.objects]

    def plan(self, instruction: str) -> list[str]:
        reply = self._call(self.client.plan, instruction)
        if not reply.success:
            raise ReasonerError(reply.message)
        return list(reply.steps)


# ---------------------------------------------------------------------- the demo's own node
class DemoDriver:
    """A node of its own rclpy context: reads the robot's pose from /tf and the camera, sends
    waypoints on goal_pose. Spins in a background thread."""

    def __init__(self, goal_topic: str = "goal_pose", color_topic: str = "camera/color/image_raw",
                 map_frame: str = "map", odom_frame: str = "odom", base_frame: str = "base_link",
                 mapper_status_topic: str = "/llm3d_mapper/status") -> None:
        from llm3d_ros.env import apply_ros_environment

        apply_ros_environment()
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from tf2_msgs.msg import TFMessage

        self._rclpy = rclpy
        self._PoseStamped = PoseStamped
        self.frames = (map_frame, odom_frame, base_frame)
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("llm3d_demo", context=self.context)
        self._lock = threading.Lock()
        self._T_map_odom: np.ndarray | None = None
        self._T_odom_base: np.ndarray | None = None
        self._rgb_msg: Any = None
        self.path: list[np.ndarray] = []  # (2,) positions, appended as the robot moves
        self._goal_pub = self.node.create_publisher(PoseStamped, goal_topic, 10)
        self.goals_heard = 0  # PoseStamped messages on goal_topic, this driver's own included
        self.node.create_subscription(PoseStamped, goal_topic, self._on_goal, 10)
        self.node.create_subscription(TFMessage, "/tf", self._on_tf, 100)
        self.node.create_subscription(Image, color_topic, self._on_rgb, qos_profile_sensor_data)
        # The mapper's status (latched): the route starts once it fuses, or a busy machine maps half of it.
        from std_msgs.msg import String

        from llm3d_ros.qos import latched_qos

        self.mapper_fused = 0
        latched = latched_qos(1)
        self.node.create_subscription(String, mapper_status_topic, self._on_mapper_status, latched)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self.context.ok():
                self._executor.spin_once(timeout_sec=0.1)
        except Exception:  # the context was shut down under us
            pass

    def _on_tf(self, msg: Any) -> None:
        from llm3d_core.messages import transform_to_matrix

        map_frame, odom_frame, base_frame = self.frames
        with self._lock:
            for t in msg.transforms:
                if t.header.frame_id == map_frame and t.child_frame_id == odom_frame:
                    self._T_map_odom = transform_to_matrix(t.transform)
                elif t.header.frame_id == odom_frame and t.child_frame_id == base_frame:
                    self._T_odom_base = transform_to_matrix(t.transform)
            pose = self._pose_locked()
            if pose is not None and (not self.path or np.linalg.norm(self.path[-1] - pose[:2]) > 0.02):
                self.path.append(pose[:2].copy())

    def _on_goal(self, msg: Any) -> None:
        with self._lock:
            self.goals_heard += 1

    def _on_rgb(self, msg: Any) -> None:
        with self._lock:
            self._rgb_msg = msg  # decoded only when a thumbnail is taken

    def _pose_locked(self) -> np.ndarray | None:
        if self._T_map_odom is None or self._T_odom_base is None:
            return None
        T = self._T_map_odom @ self._T_odom_base
        return np.array([T[0, 3], T[1, 3], math.atan2(T[1, 0], T[0, 0])])

    def pose(self) -> np.ndarray | None:
        """(x, y, yaw) of base_link in the map frame, or None before TF arrived."""
        with self._lock:
            return self._pose_locked()

    def rgb(self) -> np.ndarray | None:
        from llm3d_core.messages import decode_rgb

        with self._lock:
            msg = self._rgb_msg
        return None if msg is None else decode_rgb(msg).copy()

    def _on_mapper_status(self, msg: Any) -> None:
        try:
            self.mapper_fused = int(json.loads(msg.data).get("fused", 0))
        except (ValueError, TypeError, AttributeError):
            pass  # not the mapper's JSON: keep the last count

    def wait_for_mapper(self, timeout_s: float) -> None:
        """Until the mapper reports a fused frame (it loads its encoders after the simulator is up)."""
        deadline = time.monotonic() + timeout_s
        while self.mapper_fused < 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the mapper fused no frame within {timeout_s:.0f} s: is llm3d_mapper running?")
            time.sleep(0.1)

    def wait_for_pose(self, timeout_s: float) -> np.ndarray:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pose = self.pose()
            if pose is not None:
                return pose
            time.sleep(0.1)
        raise TimeoutError(f"no map -> {self.frames[2]} transform on /tf within {timeout_s:.0f} s: is the sim "
                           "bridge running?")

    def send_goal(self, x: float, y: float, yaw: float) -> None:
        msg = self._PoseStamped()
        msg.header.frame_id = self.frames[0]
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.pose.position.x, msg.pose.position.y = float(x), float(y)
        msg.pose.orientation.z, msg.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        self._goal_pub.publish(msg)

    def drive_to(self, x: float, y: float, yaw: float, tolerance: float, timeout_s: float) -> bool:
        """Sends the waypoint and waits until the robot is within `tolerance` of it (True) or timeout_s
        passed, or it stopped making progress for a quarter of it (False)."""
        self.send_goal(x, y, yaw)
        t0 = last_move = time.monotonic()
        last = self.pose()
        while time.monotonic() - t0 < timeout_s:
            time.sleep(0.1)
            pose = self.pose()
            if pose is None:
                continue
            if math.hypot(pose[0] - x, pose[1] - y) <= tolerance:
                time.sleep(0.5)  # let the follower turn to the waypoint's heading
                return True
            if last is None or np.linalg.norm(pose[:2] - last[:2]) > 0.02 or abs(pose[2] - last[2]) > 0.02:
                last, last_move = pose, time.monotonic()
            elif time.monotonic() - last_move > timeout_s / 4:
                return False
        return False

    def close(self) -> None:
        self._rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)
        self.node.destroy_node()

    def __enter__(self) -> "DemoDriver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- the episode
@dataclass
class RosSession:
    """A running `llm3d bringup --sim` stack after the route was driven and a map is served."""

    scene: Any  # sim.scenes scene (annotations for scoring)
    grid: Any  # the scene's navigation grid
    client: "Llm3dClient"
    driver: DemoDriver
    reasoner: ClientReasoner
    stack: Any  # llm3d_ros.child_process.ChildProcess running bringup
    result: "DemoResult"  # filled so far: route, thumbnails, map_seconds
    map_dir: Path  # where the mapper node saves (params.yaml points it here)


@contextmanager
def ros_session(cfg: "DemoConfig", checkpoint: str, out: Path, config_path: Path | None = None,
                device: str | None = None, rcfg: RosDemoConfig | None = None,
                progress: Callable[..., Any] | None = None) -> Iterator[RosSession]:
    """Starts the stack on the demo's scene, drives the explorer's route through goal_pose, waits
    for the reasoner's map and yields the session; the stack stops on exit. Raises RuntimeError
    (with the stack's last output) when the stack fails."""
    from llm3d_core.config import DEFAULT_CONFIG
    from llm3d_ros.child_process import ChildProcess
    from llm3d_ros.client import Llm3dClient, StackNotRunning
    from sim.datagen.maps import map_sim_config
    from llm3d_bench.demo import DemoResult, spread
    from sim.explore import explore
    from sim.scenes import seeds
    from sim.simulator import Simulator

    rcfg = rcfg or RosDemoConfig()
    seed = seeds(cfg.split, 1, cfg.scene_index)[0]
    # The route: the frontier explorer of `llm3d demo` on a local simulator (nothing published).
    local = Simulator(map_sim_config(width=cfg.width, height=cfg.height, max_steps=cfg.max_steps))
    try:
        scene = local.load(seed)
        explored = explore(local, local.config.explore, keep_frames=False)
        waypoints = route_waypoints(explored.path_xy, rcfg.waypoint_spacing)
        grid = local.grid
    finally:
        local.close()
    log.info("scene %s: route of %d waypoints (explorer coverage %.2f)", scene.scene_id, len(waypoints),
             explored.coverage)
    params = write_params(config_path or DEFAULT_CONFIG, out, seed, cfg, checkpoint)
    cmd = [sys.executable, "-m", "llm3d_cli.main", "bringup", "--sim", "--params-file", str(params)]
    if device:
        cmd += ["--device", device]
    stack = ChildProcess(cmd, name="bringup", max_lines=4000, new_session=True)
    result = DemoResult(scene.scene_id, cfg.split, checkpoint, 0, 0, explored.coverage, 0, 0.0, 0.0,
                        np.zeros((0, 2)), [], {}, [], [], [], None,
                        stack="ROS 2 (llm3d bringup --sim: sim bridge, mapper, reasoner processes; llm3d demo --ros)")
    try:
        with DemoDriver() as driver, Llm3dClient(server_timeout_s=rcfg.startup_timeout_s,
                                                 timeout_s=rcfg.request_timeout_s) as client:
            _check_alive(stack)
            driver.wait_for_pose(rcfg.startup_timeout_s)
            driver.wait_for_mapper(rcfg.startup_timeout_s)
            t0, thumbs, last_thumb = time.perf_counter(), [], -math.inf
            bar = progress(len(waypoints), f"driving the route of {scene.scene_id} (goal_pose)") if progress else None
            reached = 0
            for x, y, yaw in waypoints:
                _check_alive(stack)
                reached += driver.drive_to(x, y, yaw, 0.3, rcfg.waypoint_timeout_s)
                if time.perf_counter() - last_thumb >= rcfg.thumbnail_period_s and (rgb := driver.rgb()) is not None:
                    thumbs.append(rgb)
                    last_thumb = time.perf_counter()
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
            log.info("route driven: %d of %d waypoints reached in %.0f s", reached, len(waypoints),
                     time.perf_counter() - t0)
            result.explore_path_xy = np.array(driver.path) if driver.path else np.zeros((0, 2))
            result.thumbnails = spread(thumbs, cfg.thumbnails)
            time.sleep(rcfg.settle_s)  # the last frames fused and saved by the reasoner's map refresh
            reasoner = ClientReasoner(client, rcfg.request_timeout_s)
            _wait_for_map(reasoner, stack, rcfg.map_timeout_s)
            result.map_seconds = time.perf_counter() - t0
            yield RosSession(scene, grid, client, driver, reasoner, stack, result, out / "map")
    except StackNotRunning as err:
        raise RuntimeError(f"{err}\n--- bringup output (last lines) ---\n{stack.output[-4000:]}") from err
    except BaseException:
        # A failed request or check: what the nodes were doing (every thread's stack) and said.
        dump_node_stacks(stack)
        log.error("bringup output (last lines):\n%s", stack.output[-30000:])
        raise
    finally:
        rc = stack.stop(timeout_s=40.0)
        log.info("bringup stopped (exit code %s)", rc)


def dump_node_stacks(stack: Any, wait_s: float = 2.0) -> list[int]:
    """SIGUSR1 to each node `llm3d bringup` started (its output names their pids): each prints every
    thread's Python stack into the bringup output (llm3d_ros.nodes.run registers the signal).
    Returns the pids signalled."""
    import os
    import re
    import signal

    pids = [int(p) for p in re.findall(r"started \S+ \(pid (\d+)\)", stack.output)]
    sent = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGUSR1)
            sent.append(pid)
        except OSError:  # already gone
            pass
    if sent:
        time.sleep(wait_s)  # the dumps travel through bringup's pipe into stack.output
    return sent


def run_ros_demo(cfg: "DemoConfig", checkpoint: str, out: Path, config_path: Path | None = None,
                 device: str | None = None, rcfg: RosDemoConfig | None = None,
                 progress: Callable[..., Any] | None = None) -> tuple["DemoResult", Any]:
    """The demo's episode through `llm3d bringup --sim` and the clients; returns the result and the
    map the mapper saved. Raises RuntimeError (with the stack's last output) when the stack fails."""
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_bench.demo import ask_record, ground_record, pick_requests, plan_record

    rcfg = rcfg or RosDemoConfig()
    with ros_session(cfg, checkpoint, out, config_path, device, rcfg, progress) as session:
        result, reasoner = session.result, session.reasoner
        # Grounding and navigation targets among the objects the mapper node mapped (what a
        # short drive sees depends on which frames it fused); the QA and plan picks are unchanged.
        picked = pick_requests(session.scene, session.grid, cfg, seen=mapped_instances(session.map_dir, session.scene))
        seconds, errors = result.answer_seconds, result.errors
        result.qa = [ask_record(reasoner, rec, seconds, errors) for rec in picked["qa"]]
        result.grounding = [ground_record(reasoner, rec, seconds, errors) for rec in picked["ground"]]
        result.plans = [plan_record(reasoner, rec, seconds, errors) for rec in picked["plan"]]
        for rec in picked["navigate"][:1]:  # the report draws one drive
            result.navigation = navigate_ros(session.client, session.driver, rec, session.scene, session.grid, cfg, rcfg)
            result.final_view = session.driver.rgb()
        stack = session.stack
    try:
        mapper = FeatureFusionMapper.load(out / "map", device="cpu")
    except Exception as err:
        raise RuntimeError(f"the mapper saved no readable map in {out / 'map'}: {err}\n"
                           f"--- bringup output (last lines) ---\n{stack.output[-4000:]}") from err
    # frames: what the mapper fused (the bridge streams more; the mapper drops stale ones, by design)
    result.fused = result.frames = int(mapper.frames)
    result.objects = len(mapper.objects)
    result.fps = result.fused / result.map_seconds if result.map_seconds > 0 else 0.0
    return result, mapper


def _check_alive(stack: Any) -> None:
    if stack.proc.poll() is not None:
        raise RuntimeError(f"llm3d bringup exited with code {stack.proc.returncode}\n"
                           f"--- bringup output (last lines) ---\n{stack.output[-4000:]}")


def mapped_instances(map_dir: Path, scene: Any, min_iou: float = 0.25) -> set[int]:
    """Scene instances the map the mapper node saved holds as objects: some map object's box overlaps
    the instance's box by 3D IoU >= min_iou (over ROS the mapper segments geometry; it gets no
    instance ids from the simulator)."""
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.geometry import box_iou_3d

    mapper = FeatureFusionMapper.load(map_dir, device="cpu")
    boxes = [np.concatenate([o.box_min, o.box_max]) for o in mapper.objects]
    return {inst.id for inst in scene.instances
            if any(box_iou_3d(b, np.concatenate([inst.box_min, inst.box_max])) >= min_iou for b in boxes)}


def _wait_for_map(reasoner: ClientReasoner, stack: Any, timeout_s: float) -> None:
    """Until the reasoner answers from a map: before the mapper's first save it answers about the
    camera's current view (its message says so) or says 'no map yet'."""
    deadline = time.monotonic() + timeout_s
    while True:
        _check_alive(stack)
        reply = reasoner.client.ask("What is in the room?", timeout_s=reasoner.timeout_s)
        if reply.success and not from_camera_view(reply.message):
            return
        if not reply.success and "no map yet" not in reply.message or time.monotonic() > deadline:
            raise RuntimeError(f"the reasoner has no usable map: {reply.message}")
        time.sleep(1.0)


def navigate_ros(client: "Llm3dClient", driver: DemoDriver, rec: dict, scene: Any, grid: Any, cfg: "DemoConfig",
                 rcfg: RosDemoConfig) -> "NavigationResult":
    """navigate_to through the action; scored like llm3d_bench.demo.navigate (habitat-lab Success and SPL)."""
    from llm3d_bench.demo import NavigationResult, score_navigation, shortest_path_m

    start = driver.pose()
    inst = next(i for i in scene.instances if i.id == rec["object_ids"][0])
    truth_box = np.concatenate([inst.box_min, inst.box_max])
    shortest = shortest_path_m(grid, inst, start[:2], cfg.success_distance)
    first = len(driver.path)
    reply = client.navigate(rec["question"], cfg.success_distance, timeout_s=cfg.max_drive_s + rcfg.request_timeout_s)
    time.sleep(0.5)  # the last TF of the stopped robot
    end = driver.pose()
    path_xy = np.array([start[:2], *driver.path[first:], end[:2]])
    driven, dist, success, spl = score_navigation(path_xy, truth_box, shortest, cfg.success_distance)
    target = reply.target
    goal = list(reply.final_pose) if reply.final_pose else list(end)  # where the action ended
    state = {"succeeded": "reached", "aborted": "failed"}.get(reply.status, reply.status)
    from llm3d_core.geometry import box_iou_3d

    target_iou = box_iou_3d(np.asarray(target.box, dtype=np.float64), truth_box) if target else None
    return NavigationResult(rec["question"], target.label if target else "", inst.category, goal, path_xy,
                            state if reply.target or reply.success else "no_goal", reply.message, dist, success, spl,
                            shortest, driven, cfg.success_distance, target_iou)
