"""`llm3d_reasoner`: the 3D-LLM over ROS 2 — dialog, grounding, plans and language navigation.

A thin adapter around `llm3d_core.reasoner.Reasoner`: it declares parameters
(`ReasonerNodeConfig`), converts messages (`llm3d_ros.conversions`), and runs every model call in one
inference worker thread that owns the model and the loaded map. Service and action callbacks sit
in reentrant callback groups of a MultiThreadedExecutor and wait on the worker's futures, so a
slow answer never blocks TF, timers, other requests' admission or navigation feedback.

Where the map comes from: the reasoner reads the map the mapper saves (`map_dir`, the mapper's
`map_path`). It asks the mapper to save (`mapper_save_service`, the mapper's ~/save_map) every
`map_refresh_period_s` while the mapper's status reports unsaved changes, polls the manifest's
save id every `map_poll_period_s`, and loads a new save in the worker. Before each request the
worker checks the save id once more, so an answer always uses the newest committed save. The
same parameters serve an offline map: point `map_dir` at it and set `mapper_save_service: ''`.
(Why files, not a map topic: a map with features is tens of MB, the mapper's saves are atomic and
versioned, and a restarted reasoner or mapper picks up the last save at once.)

Interfaces (names relative to the node's namespace; all configurable):
    services    ask          llm3d_interfaces/srv/Ask      dialog; empty session_id starts a session
                ground       llm3d_interfaces/srv/Ground   Object3D boxes in map_frame, best first
                plan         llm3d_interfaces/srv/Plan     steps
    action      navigate_to  llm3d_interfaces/action/NavigateTo
    publishes   goal_pose            geometry_msgs/PoseStamped  reliable, depth 10 (Nav2 convention)
                cmd_vel              geometry_msgs/Twist        a zero twist on cancel / timeout
                grounding/markers    visualization_msgs/MarkerArray  reliable, transient local
                ~/status             std_msgs/String (JSON)     reliable, transient local
                /diagnostics         diagnostic_msgs/DiagnosticArray  "llm3d_reasoner: inference", with every
                                     status (llm3d_ros.diagnostics; diagnostics_topic)
    subscribes  /tf, /tf_static      robot pose (map_frame -> base_frame) for navigation
                camera colour, depth, camera_info (frame_input; best effort, until a map loads)
                /llm3d_mapper/status whether the live map has unsaved changes
    calls       /llm3d_mapper/save_map  std_srvs/Trigger

Navigation: the target is grounded, a free goal pose facing it is chosen on the map's occupancy
grid (reachable from the robot's TF pose, at most 0.75 x success_distance from the target so
that arriving means success), validated (finite, inside the map, free) and published. Feedback
reports the straight-line distance from the robot to the goal. A navigation always ends: it
succeeds when the robot is within success_distance of the target's footprint; it aborts when
the base reports the goal ABORTED or CANCELED on goal_status_topic (refused, unreachable), when
the robot got no progress_min_m closer for progress_timeout_s, after navigate_timeout_s, when a
newer navigate_to goal preempts it, or when the node shuts down; a cancel stops the robot (zero
cmd_vel). The result message says which.

Admission: every request gets a reply. The services and the action's services keep every
request DDS delivers (service_queue_depth 0 = keep all), and the executor always has threads to
take them (max_pending waiting requests + a reserve), so a burst of any size is answered: up to
max_pending wait for the model ("answered in X s, queue position P of max_pending"), the rest
are refused at once with "busy ... retry in N s", and a waiting one gives up after
request_timeout_s with a message.

Before any map exists (`frame_input`, UniVLG's single-view input): ask, ground and plan answer
about the camera's newest colour + depth pair, lifted to 3D in camera coordinates in the worker
when a request arrives; ground's boxes are then in the camera's frame (the response header says
which) and the message says the answer is about the current view; navigate_to waits for a map.
The camera subscriptions exist only while they can serve: from the model being ready with no
map saved until the first map loads.

Bad requests (empty or overlong text, no map yet, unknown session, absurd success distance, a
model that failed to load) answer success=False / abort with a message; the node keeps serving.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Callable

from llm3d_ros.env import apply_ros_environment

# rcl checks RMW_IMPLEMENTATION when its library loads, i.e. on `import rclpy`: set it first.
apply_ros_environment(localhost=False)

import rclpy  # noqa: E402
from action_msgs.msg import GoalStatusArray  # noqa: E402
from geometry_msgs.msg import PoseStamped, Twist  # noqa: E402
from llm3d_interfaces.action import NavigateTo  # noqa: E402
from llm3d_interfaces.srv import Ask, Ground, Plan  # noqa: E402
from rclpy.action import ActionServer, CancelResponse, GoalResponse  # noqa: E402
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from llm3d_core.config import ConfigError  # noqa: E402
from llm3d_core.device import release_free_memory  # noqa: E402
from llm3d_core.reasoner import Reasoner, ReasonerError, load_model  # noqa: E402
from llm3d_ros.conversions import (  # noqa: E402
    ConversionError,
    grounded_to_object3d,
    grounding_markers,
    relevancy_cloud,
    transport_topic,
)
from llm3d_ros.diagnostics import REASONER_COMPONENT, DiagnosticsPublisher, reasoner_diagnosis  # noqa: E402
from llm3d_ros.nodes.reasoner_config import ReasonerNodeConfig  # noqa: E402
from llm3d_ros.nodes.reasoner_inputs import MapInputs  # noqa: E402
from llm3d_ros.nodes.reasoner_navigation import NavigationActions  # noqa: E402
from llm3d_ros.nodes.run import run_node  # noqa: E402
from llm3d_ros.qos import latched_qos, reliable_qos, service_qos  # noqa: E402
from llm3d_ros.parameters import declare_config_parameters, read_config_parameters  # noqa: E402
from llm3d_ros.tf_buffer import make_tf_buffer  # noqa: E402
from llm3d_ros.view_input import LatestView, view_note  # noqa: E402

NODE_NAME = "llm3d_reasoner"
REQUEST_KINDS = ("ask", "ground", "plan", "navigate")
LATCHED_QOS = latched_qos(1)
GOAL_QOS = reliable_qos(10)
CMD_VEL_QOS = reliable_qos(1)
# Executor threads beyond max_pending (each waiting request holds one): navigation loops (a running
# one and the one preempting it), timers, TF, camera view input, and quick refusals of a burst.
# rclpy takes a service's next request only on a free thread, so all-busy threads would leave a
# burst in DDS's queue.
RESERVED_THREADS = 7
# Seconds between hand-backs of freed memory while no request waits: requests, map loads, TF and
# DDS traffic free memory in several threads' arenas, and glibc keeps those pages otherwise.
TRIM_PERIOD_S = 10.0


class ReasonerNode(MapInputs, NavigationActions, Node):
    """The reasoner node; `start()` loads the model in the worker, `stop()` drains and joins it."""

    def __init__(self, **node_kwargs: Any) -> None:
        # Every key of the params file becomes a parameter, so typos reach config_from_dict and
        # fail loudly instead of being ignored as undeclared overrides.
        super().__init__(NODE_NAME, automatically_declare_parameters_from_overrides=True, **node_kwargs)
        declare_config_parameters(self, ReasonerNodeConfig())
        self.cfg = read_config_parameters(self, ReasonerNodeConfig)
        cfg = self.cfg
        self.map_dir = Path(cfg.map_dir).expanduser().resolve()
        self.checkpoint = cfg.checkpoint_path()

        # One worker owns the model and the map: torch models are not safe to call from several
        # threads at once, and one device queue is what a GPU wants anyway.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm3d_reasoner_infer")
        self._reasoner: Reasoner | None = None  # worker thread only
        self._lock = threading.Lock()  # guards the state below (executor threads <-> worker)
        self._model_state, self._model_message = "loading", ""
        # input: what answers refer to: map | camera view (frame_input, before any map) | none
        # loaded_at: the node clock's seconds when the map loaded (0: none), for its age in diagnostics.
        self._map = {"version": "", "objects": 0, "points": 0, "frames": 0, "loaded_at": 0.0, "error": "", "loads": 0,
                     "input": "none"}
        self._map_job: Future | None = None
        self._pending = 0
        self._stats = {k: {"count": 0, "failed": 0, "last_s": 0.0, "total_s": 0.0} for k in REQUEST_KINDS}
        # Failures that are the node's, not the request's: refused as busy, timed out, internal errors.
        self._errors = {"busy": 0, "timeout": 0, "internal": 0}
        self._last_error = {"kind": "", "message": "", "stamp": 0.0}  # of any failed request (kind refused: its own fault)
        self._navigations = 0  # active
        self._navigation_number = 0  # of the newest navigation; an older one sees it was preempted
        self._navigation_instruction = ""
        self._base_goals: GoalStatusArray | None = None  # newest goal_status of the base
        self._service_s = 0.0  # running mean of a worker job's seconds (busy replies' retry estimate)
        self.executor_threads = cfg.max_pending + RESERVED_THREADS
        self._stopping = threading.Event()
        self._mapper_unsaved: bool | None = None  # None: no mapper status seen
        self._save_future: Future | None = None

        self.tf = make_tf_buffer(self, 10.0)
        requests = ReentrantCallbackGroup()
        timers = MutuallyExclusiveCallbackGroup()
        # Single-view input while no map exists (frame_input): callbacks only keep message references.
        # Subscribed only once the model is ready and no map is saved (see _update_view_input), so a
        # robot with a map never carries a second copy of its camera streams.
        fin = cfg.frame_input
        self._view = LatestView(fin.sync_tolerance_s) if fin.enabled else None
        self._view_topics = (f"{transport_topic(fin.color_topic, fin.color_transport)} + "
                             f"{transport_topic(fin.depth_topic, fin.depth_transport)} + {fin.camera_info_topic}")
        self._view_subs: list = []
        self._view_group = MutuallyExclusiveCallbackGroup()
        self._view_encoder = None  # worker thread only; built on the first view request
        qos = service_qos(cfg.service_queue_depth)
        self.create_service(Ask, "ask", self._on_ask, qos_profile=qos, callback_group=requests)
        self.create_service(Ground, "ground", self._on_ground, qos_profile=qos, callback_group=requests)
        self.create_service(Plan, "plan", self._on_plan, qos_profile=qos, callback_group=requests)
        self._action = ActionServer(self, NavigateTo, "navigate_to", execute_callback=self._navigate,
                                    goal_callback=lambda _req: GoalResponse.ACCEPT,
                                    cancel_callback=lambda _goal: CancelResponse.ACCEPT, callback_group=requests,
                                    goal_service_qos_profile=qos, result_service_qos_profile=qos,
                                    cancel_service_qos_profile=qos)
        if cfg.goal_status_topic:
            # Latched like an action's status topic: the newest array is all there is to read.
            self.create_subscription(GoalStatusArray, cfg.goal_status_topic, self._on_base_goals, LATCHED_QOS,
                                     callback_group=timers)
        self._goal_pub = self.create_publisher(PoseStamped, cfg.goal_topic, GOAL_QOS)
        self._cmd_vel_pub = self.create_publisher(Twist, cfg.cmd_vel_topic, CMD_VEL_QOS)
        self._markers_pub = self.create_publisher(MarkerArray, cfg.markers_topic, LATCHED_QOS)
        self._relevancy_pub = (self.create_publisher(PointCloud2, cfg.relevancy_topic, LATCHED_QOS)
                               if cfg.relevancy_topic else None)
        self._status_pub = self.create_publisher(String, cfg.status_topic, LATCHED_QOS)
        self._diagnostics = DiagnosticsPublisher(self, cfg.diagnostics_topic, REASONER_COMPONENT, reasoner_diagnosis,
                                                 cfg.diagnostics_window_s)
        self.create_timer(cfg.status_period_s, self._publish_status, callback_group=timers)
        self.create_timer(TRIM_PERIOD_S, self._trim_when_idle, callback_group=timers)
        self.create_timer(cfg.map_poll_period_s, self._poll_map, callback_group=timers)
        self._save_client = None
        if cfg.mapper_save_service and cfg.map_refresh_period_s > 0:
            self._save_client = self.create_client(Trigger, cfg.mapper_save_service, callback_group=timers)
            self.create_timer(cfg.map_refresh_period_s, self._request_save, callback_group=timers)
            if cfg.mapper_status_topic:
                self.create_subscription(String, cfg.mapper_status_topic, self._on_mapper_status, LATCHED_QOS,
                                         callback_group=timers)
        self.get_logger().info(
            f"map {self.map_dir}; model {self.checkpoint or 'untrained (' + repr(cfg.checkpoint) + ')'} on "
            f"{cfg.model_device()}; grounding {cfg.reasoner.grounding}")

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._worker.submit(self._load_model)

    def stop(self) -> None:
        """Ends navigation loops, drops queued requests and joins the worker after its current job."""
        self._stopping.set()
        self._worker.shutdown(wait=True, cancel_futures=True)

    def _shutting_down(self) -> bool:
        return self._stopping.is_set() or not rclpy.ok(context=self.context)

    # ------------------------------------------------------------ worker thread (the map and view: reasoner_inputs)
    def _load_model(self) -> None:
        cfg = self.cfg
        if self.checkpoint is None:
            self.get_logger().warning(
                "no checkpoint (checkpoint: " + repr(cfg.checkpoint) + "): the scene encoder is untrained and answers "
                "are arbitrary; train one with `llm3d train` or set `checkpoint`")
        t0 = time.monotonic()
        try:
            model = load_model(self.checkpoint, cfg.model, cfg.model_device(), cfg.checkpoint_overrides(),
                               cfg.torch_threads)
        except Exception as err:  # CheckpointError, LlmLoadError, torch errors: report and keep serving
            message = f"the model could not be loaded: {err}"
            self.get_logger().error(message)
            with self._lock:
                self._model_state, self._model_message = "failed", message
            return
        self._reasoner = Reasoner(model, cfg.reasoner)
        note = f"model ready on {model.device} in {time.monotonic() - t0:.1f} s"
        self.get_logger().info(note)
        with self._lock:
            self._model_state, self._model_message = "ready", note
        self._refresh_map()

    def _call(self, fn: Callable[[Reasoner], Any]) -> tuple[Any, str]:
        """Runs in the worker: the newest map (else the newest camera view), then fn(reasoner).
        Returns (fn's value, what it answered about: '' for the map, else a note on the view)."""
        with self._lock:
            state, message = self._model_state, self._model_message
        if self._reasoner is None:
            raise ReasonerError(message if state == "failed" else "the model is still loading")
        self._refresh_map()
        t0 = time.monotonic()
        snap = self._reasoner.map
        if snap is None or snap.is_frame:
            self._refresh_view()
        try:
            value = fn(self._reasoner)
        finally:
            with self._lock:
                self._service_s = 0.8 * self._service_s + 0.2 * (time.monotonic() - t0)
        snap = self._reasoner.map
        note = view_note(snap.frame_id) if snap and snap.is_frame else ""
        return value, note

    # ------------------------------------------------------------ requests (executor threads; they wait)
    def _run(self, kind: str, fn: Callable[[Reasoner], Any]) -> tuple[bool, str, Any]:
        """(success, message, value) of fn run in the worker; never raises."""
        limit = self.cfg.max_pending
        with self._lock:
            if self._pending >= limit:
                self._count(kind, False, 0.0)
                retry_s = max(1, math.ceil(self._pending * self._service_s))
                busy = f"busy: all {limit} places in the model's queue are taken (max_pending); retry in {retry_s} s"
                self._note_error("busy", f"{kind}: {busy}")
                return False, busy, None
            self._pending += 1
            position = self._pending
        t0 = time.monotonic()
        ok, message, value, failure = False, "", None, "refused"
        try:
            future = self._worker.submit(self._call, fn)
            value, note = future.result(timeout=self.cfg.request_timeout_s)
            ok = True
        except ReasonerError as err:
            message = str(err)
        except FutureTimeout:
            future.cancel()  # drops it if it has not started; a running job finishes unobserved
            message = f"no answer within request_timeout_s={self.cfg.request_timeout_s} s (the model is busy or slow)"
            failure = "timeout"
        except RuntimeError as err:
            if self._stopping.is_set():  # submit() after shutdown
                message = "the reasoner is shutting down"
            else:
                message, failure = f"internal error: {err!r}", "internal"
                self.get_logger().error(f"{kind} failed: {err!r}")
        except Exception as err:  # a model bug must not take the node down
            message, failure = f"internal error: {err!r}", "internal"
            self.get_logger().error(f"{kind} failed: {err!r}")
        seconds = time.monotonic() - t0
        with self._lock:
            self._pending -= 1
            self._count(kind, ok, seconds)
            if not ok:
                self._note_error(failure, f"{kind}: {message}")
        if not ok:
            self.get_logger().warning(f"{kind} refused: {message}", throttle_duration_sec=2.0)
        return ok, message if not ok else f"answered in {seconds:.2f} s (queue position {position} of {limit}){note}", value

    def _note_error(self, kind: str, message: str) -> None:
        """Called with the lock held: counts a failure of the node's (busy|timeout|internal), keeps the last one."""
        if kind in self._errors:
            self._errors[kind] += 1
        self._last_error = {"kind": kind, "message": message, "stamp": self.get_clock().now().nanoseconds * 1e-9}

    def _count(self, kind: str, ok: bool, seconds: float) -> None:
        stats = self._stats[kind]
        stats["count"] += 1
        stats["failed"] += not ok
        if ok:
            stats["last_s"] = seconds
            stats["total_s"] += seconds

    def _on_ask(self, request: Ask.Request, response: Ask.Response) -> Ask.Response:
        ok, message, value = self._run("ask", lambda r: r.ask(request.question, request.session_id))
        response.success, response.message = ok, message
        response.answer, response.session_id = value if ok else ("", request.session_id)
        return response

    def _on_ground(self, request: Ground.Request, response: Ground.Response) -> Ground.Response:
        def ground(r: Reasoner) -> tuple[list, str]:
            self._publish_relevancy(r, request.query)  # also when the query is refused: what the map scored
            found = r.ground(request.query, max(0, request.max_results))
            return found, (r.map.frame_id or self.cfg.map_frame)  # a camera view's boxes are in its frame

        ok, message, value = self._run("ground", ground)
        response.header.frame_id = self.cfg.map_frame
        response.header.stamp = self.get_clock().now().to_msg()
        if ok:
            value, response.header.frame_id = value
            try:
                response.objects = [grounded_to_object3d(g) for g in value]
                self._markers_pub.publish(grounding_markers(request.query.strip(), value, response.header.frame_id,
                                                            response.header.stamp))
            except ConversionError as err:
                ok, message = False, f"grounding result not convertible: {err}"
            if ok and not value:
                message = f"nothing in the map matches '{request.query.strip()}'"
        response.success, response.message = ok, message
        return response

    def _publish_relevancy(self, r: Reasoner, query: str) -> None:
        """The map's voxels coloured by their open-vocabulary score for `query` (worker thread), as
        OpenScene/ConceptFusion draw a text query's relevancy over the map: blue low, red high."""
        snap = r.map
        if self._relevancy_pub is None or snap is None or snap.is_frame or not query.strip() \
                or not getattr(snap.mapper, "text_dim", 0):
            return
        try:
            centers, scores = snap.mapper.relevancy(query.strip())  # (M, 3), (M,)
        except (RuntimeError, ValueError) as err:
            self.get_logger().warning(f"relevancy of '{query}' not computed: {err}", throttle_duration_sec=30.0)
            return
        try:
            self._relevancy_pub.publish(relevancy_cloud(centers, scores, self.cfg.relevancy_max_points,
                                                        self.cfg.map_frame, self.get_clock().now().to_msg()))
        except ConversionError as err:
            self.get_logger().warning(f"relevancy cloud not published: {err}", throttle_duration_sec=30.0)

    def _on_plan(self, request: Plan.Request, response: Plan.Response) -> Plan.Response:
        ok, message, value = self._run("plan", lambda r: r.plan(request.instruction))
        response.success, response.message = ok, message
        response.steps = list(value) if ok else []
        return response

    # ------------------------------------------------------------ status (timer group)
    def _trim_when_idle(self) -> None:
        """Returns freed memory to the OS when no request waits (a trim takes the allocator's locks)."""
        with self._lock:
            idle = self._pending == 0
        if idle:
            release_free_memory()

    def _publish_status(self) -> None:
        with self._lock:
            requests = {k: {"count": v["count"], "failed": v["failed"], "last_s": round(v["last_s"], 4),
                            "mean_s": round(v["total_s"] / max(1, v["count"] - v["failed"]), 4)}
                        for k, v in self._stats.items()}
            status = {
                "node": self.get_name(), "stamp": self.get_clock().now().nanoseconds * 1e-9,
                "model": {"state": self._model_state, "message": self._model_message,
                          "checkpoint": str(self.checkpoint or ""), "trained": self.checkpoint is not None},
                "map": {"dir": str(self.map_dir), **self._map},
                "sessions": self._reasoner.session_count if self._reasoner else 0,
                "pending": self._pending, "max_pending": self.cfg.max_pending, "navigations": self._navigations,
                "requests": requests, "errors": dict(self._errors), "last_error": dict(self._last_error),
                "tf": self.tf.counters(),
            }
        self._status_pub.publish(String(data=json.dumps(status)))
        reasoner = self._reasoner
        self._diagnostics.publish(status, str(reasoner.model.device) if reasoner else self.cfg.model_device())


def main(argv: list[str] | None = None) -> int:
    """Runs the node until SIGINT/SIGTERM; exit code 2 for invalid parameters."""
    return run_node(ReasonerNode, NODE_NAME, argv, threads=RESERVED_THREADS, fatal=(ConfigError,))

if __name__ == "__main__":
    sys.exit(main())
