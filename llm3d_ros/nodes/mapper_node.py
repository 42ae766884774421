"""`llm3d_mapper`: posed RGB-D frames in, a live 3D feature map out.

A thin adapter around `llm3d_core.mapping.mapper.FeatureFusionMapper`: it declares parameters
(`MapperNodeConfig`), converts messages (`llm3d_ros.conversions`), asks TF for the camera pose
and calls `integrate()`, then publishes. Fusion runs in a worker thread, so the executor keeps
receiving images, TF and service calls while a frame is being fused.

Interfaces (names relative to the node's namespace; all configurable):
    subscribes  camera/color/image_raw     sensor_msgs/Image        best effort, depth 2
                camera/depth/image_raw     sensor_msgs/Image        best effort, depth 2
                (color_transport / depth_transport compressed: CompressedImage on <topic>/compressed
                 and <topic>/compressedDepth, as image_transport publishes them)
                camera/color/camera_info   sensor_msgs/CameraInfo   best effort, depth 2
                /tf, /tf_static            tf2_msgs/TFMessage       reliable; /tf_static transient local
    publishes   map_cloud                  sensor_msgs/PointCloud2  x, y, z, rgb; reliable, transient local
                objects/markers            visualization_msgs/MarkerArray  reliable, transient local
                map                        nav_msgs/OccupancyGrid   reliable, transient local (Nav2's map;
                                           every occupancy_period_s while the map changes)
                trajectory                 nav_msgs/Path            reliable, transient local (where the
                                           camera has been; whenever it grew)
                ~/status                   std_msgs/String (JSON)   reliable, transient local
                /diagnostics               diagnostic_msgs/DiagnosticArray  "llm3d_mapper: fusion", with
                                           every status (llm3d_ros.diagnostics; diagnostics_topic)
    services    ~/save_map, ~/reset_map    std_srvs/Trigger

Dropping, not lagging: colour and depth are paired by stamp (`sync_tolerance_s`); each pair goes
into a bounded queue (`queue_size`, default 1) that the worker drains. A pair that is still
waiting when a newer one arrives is dropped ("dropped.stale"); colour or depth frames that never
found a partner are "dropped.unpaired". So under a 30 Hz camera the map follows the newest
frames at whatever rate fusion manages, and memory stays bounded.

Status (`~/status`, JSON, every `status_period_s`):
    {"node": "llm3d_mapper", "stamp": <s>,
     "received": {"color": n, "depth": n, "camera_info": n},
     "paired": n, "fused": n, "queue": n,
     "skipped": {"still": n},      # frames of a still camera past still_max_frames (still_fuse_period_s)
     "dropped": {"stale": n, "unpaired": n},
     "errors": {"bad_image": n, "bad_camera_info": n, "no_camera_info": n, "no_frame_id": n,
                "no_transform": n, "bad_frame": n, "no_valid_depth": n, "fusion_failed": n,
                "save_failed": n},
     "tf": {"static_conflict": n, "future": n, "past": n, ...},   # TF samples refused or overridden
     "map": {"voxels": n, "objects": n, "frames": n},
     "timing": {"last_fuse_s": x, "mean_fuse_s": x, "last_latency_s": x},
     "saves": {"count": n, "last_path": "...", "unsaved": bool, "autosave_period_s": x,
               "resumed": bool, "previous": "<folder the map found at start was moved to, or ''>"},
     "last_error": {"kind": "<one of errors>", "message": "...", "stamp": <s>}}   # kind '' before any
("unsaved": the map changed since the last save; an autosave follows within autosave_period_s.
"last_latency_s": camera-to-map latency of the last fused frame, the node's clock when its fusion
returned minus its image stamp; `llm3d bench ros` samples it.)
Every bad input is counted in "errors" and logged as a warning at most every `warn_period_s`
per kind; the node keeps running.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np

from llm3d_ros.env import apply_ros_environment

# rcl checks RMW_IMPLEMENTATION when its library loads, i.e. on `import rclpy`: set it first.
apply_ros_environment(localhost=False)

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup  # noqa: E402
from rclpy.node import Node  # noqa: E402
from nav_msgs.msg import OccupancyGrid  # noqa: E402
from nav_msgs.msg import Path as PathMsg  # noqa: E402  (pathlib's Path is used too)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from llm3d_core.config import ConfigError  # noqa: E402
from llm3d_core.device import release_free_memory  # noqa: E402
from llm3d_core.durable import fsync_dir  # noqa: E402
from llm3d_core.geometry import FrameError  # noqa: E402
from llm3d_core.mapping.goals import NavigationMap  # noqa: E402
from llm3d_core.mapping.mapper import FeatureFusionMapper, MapFileError  # noqa: E402
from llm3d_ros.conversions import (  # noqa: E402
    ConversionError,
    camera_info_to_K,
    objects_to_markers,
    occupancy_grid_msg,
    path_msg,
    pointcloud2_xyzrgb,
    rgbd_frame_from_messages,
    stamp_to_ns,
    transport_topic,
)
from llm3d_ros.diagnostics import MAPPER_COMPONENT, DiagnosticsPublisher, mapper_diagnosis  # noqa: E402
from llm3d_ros.map_access import map_cloud  # noqa: E402
from llm3d_ros.nodes.common import BadInputs  # noqa: E402
from llm3d_ros.nodes.mapper_config import MapperNodeConfig  # noqa: E402
from llm3d_ros.nodes.run import run_node  # noqa: E402
from llm3d_ros.parameters import declare_config_parameters, read_config_parameters  # noqa: E402
from llm3d_ros.qos import latched_qos, sensor_qos  # noqa: E402
from llm3d_ros.sync import LatestQueue, StampPairer  # noqa: E402
from llm3d_ros.tf_buffer import TransformError, make_tf_buffer  # noqa: E402

NODE_NAME = "llm3d_mapper"
ERROR_KINDS = ("bad_image", "bad_camera_info", "no_camera_info", "no_frame_id", "no_transform", "bad_frame",
               "no_valid_depth", "fusion_failed", "save_failed")
SENSOR_QOS = sensor_qos(2)
LATCHED_QOS = latched_qos(1)
PAIR_BUFFER = 10  # unmatched colour/depth frames kept per stream while waiting for a partner


class MapperNode(Node):
    """The mapper node; `start()` launches the fusion worker, `stop()` joins it."""

    def __init__(self, **node_kwargs) -> None:
        # Every key of the params file becomes a parameter, so typos reach config_from_dict and
        # fail loudly instead of being ignored as undeclared overrides.
        super().__init__(NODE_NAME, automatically_declare_parameters_from_overrides=True, **node_kwargs)
        declare_config_parameters(self, MapperNodeConfig())
        self.cfg = read_config_parameters(self, MapperNodeConfig)
        self.map_path = Path(self.cfg.map_path).expanduser().resolve()
        self._resumed = False
        self._keep_aside = False  # a map found at map_path and not resumed: moved aside by the first save
        self._previous_map = ""
        self.mapper = self._build_mapper()
        self.tf = make_tf_buffer(self, self.cfg.tf_cache_s)

        self._map_lock = threading.Lock()  # the mapper is used by the worker and the services
        self._stats_lock = threading.Lock()
        self._received = {"color": 0, "depth": 0, "camera_info": 0}
        self._bad_inputs = BadInputs(ERROR_KINDS, self.cfg.warn_period_s, self.get_logger().warning)
        self._fused = 0
        self._paired = 0
        self._still = 0  # frames skipped: the camera had not moved since the last fused one
        # Where and when (monotonic s) the last frame was fused, and how many fused frames in a row
        # were taken there (worker thread; cleared by a reset).
        self._last_fused: tuple[np.ndarray, float] | None = None
        self._fused_here = 0
        self._fuse_seconds_total = 0.0
        self._timing = {"last_fuse_s": 0.0, "mean_fuse_s": 0.0, "last_latency_s": 0.0}
        self._map_summary = {"voxels": len(self.mapper.voxels), "objects": len(self.mapper.objects),
                             "frames": self.mapper.frames}
        self._saves = 0
        self._last_save_path = ""
        self._camera_info: CameraInfo | None = None
        self._camera_frame_seen = ""  # the colour images' frame_id (camera_frame may be left empty)

        self._pairer: StampPairer[Image, Image] = StampPairer(int(self.cfg.sync_tolerance_s * 1e9), PAIR_BUFFER)
        self._queue: LatestQueue[tuple[int, Image, Image]] = LatestQueue(self.cfg.queue_size)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="llm3d_mapper_fusion", daemon=True)
        self._publish_requested = threading.Event()
        self._map_changed = False  # since the last cloud publication (worker thread only)
        self._unsaved = False  # since the last save
        self._last_cloud = 0.0
        self._last_autosave = time.monotonic()

        sensors = MutuallyExclusiveCallbackGroup()
        services = MutuallyExclusiveCallbackGroup()
        timers = MutuallyExclusiveCallbackGroup()
        # raw Image, or image_transport's CompressedImage on <topic>/compressed | /compressedDepth: the
        # conversions decode either (llm3d_core.messages, shared with the bag reader).
        color_type = Image if self.cfg.color_transport == "raw" else CompressedImage
        depth_type = Image if self.cfg.depth_transport == "raw" else CompressedImage
        self.color_topic = transport_topic(self.cfg.color_topic, self.cfg.color_transport)
        self.depth_topic = transport_topic(self.cfg.depth_topic, self.cfg.depth_transport)
        self.create_subscription(color_type, self.color_topic, self._on_color, SENSOR_QOS, callback_group=sensors)
        self.create_subscription(depth_type, self.depth_topic, self._on_depth, SENSOR_QOS, callback_group=sensors)
        self.create_subscription(CameraInfo, self.cfg.camera_info_topic, self._on_camera_info, SENSOR_QOS,
                                 callback_group=sensors)
        self._cloud_pub = self.create_publisher(PointCloud2, self.cfg.map_cloud_topic, LATCHED_QOS)
        self._markers_pub = self.create_publisher(MarkerArray, self.cfg.markers_topic, LATCHED_QOS)
        self._occupancy_pub = (self.create_publisher(OccupancyGrid, self.cfg.occupancy_topic, LATCHED_QOS)
                               if self.cfg.occupancy_topic else None)
        self._occupancy_changed = False  # since the last /map (worker thread only)
        self._trajectory_pub = (self.create_publisher(PathMsg, self.cfg.trajectory_topic, LATCHED_QOS)
                                if self.cfg.trajectory_topic else None)
        self._trajectory_published = -1  # poses in the last Path (worker thread only)
        self._last_occupancy = 0.0
        self._status_pub = self.create_publisher(String, self.cfg.status_topic, LATCHED_QOS)
        self._diagnostics = DiagnosticsPublisher(
            self, self.cfg.diagnostics_topic, MAPPER_COMPONENT,
            partial(mapper_diagnosis, frame_timeout_s=self.cfg.frame_timeout_s, max_drop_ratio=self.cfg.max_drop_ratio),
            self.cfg.diagnostics_window_s)
        self.create_service(Trigger, "~/save_map", self._on_save, callback_group=services)
        self.create_service(Trigger, "~/reset_map", self._on_reset, callback_group=services)
        self.create_timer(self.cfg.status_period_s, self._publish_status, callback_group=timers)
        if self.cfg.pose_period_s > 0:
            self.create_timer(self.cfg.pose_period_s, self._record_pose, callback_group=timers)
        self.get_logger().info(
            f"mapping {self.color_topic} + {self.depth_topic} in frame '{self.cfg.map_frame}' on "
            f"{self.mapper.device}; map file {self.map_path}")

    def _build_mapper(self) -> FeatureFusionMapper:
        core = self.cfg.core_config()
        if not (self.map_path / "map.json").is_file():
            return FeatureFusionMapper(core)
        if self.cfg.resume:
            try:
                mapper = FeatureFusionMapper.load(self.map_path, device=core.device)
                self._resumed = True
                self.get_logger().info(f"resumed the map at {self.map_path} ({mapper.frames} frames, "
                                       f"{len(mapper.voxels)} voxels; its saved mapper config applies)")
                return mapper
            except MapFileError as err:
                self.get_logger().error(f"cannot resume: {err}; starting an empty map (the unreadable one is kept "
                                        "aside at the first save)")
        else:
            self.get_logger().info(f"a map exists at {self.map_path} and resume is off: starting an empty map; the "
                                   "existing one is kept aside at the first save")
        self._keep_aside = True
        return FeatureFusionMapper(core)

    def _move_previous_map(self) -> None:
        """Renames the map found at start (not resumed) to a sibling folder, once, before the first save."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        target = self.map_path.with_name(f"{self.map_path.name}.previous-{stamp}")
        n = 1
        while target.exists():
            target = self.map_path.with_name(f"{self.map_path.name}.previous-{stamp}-{n}")
            n += 1
        if self.map_path.exists():
            os.replace(self.map_path, target)  # one rename: a reader sees the old map or none, never half
            fsync_dir(self.map_path.parent)
            self._previous_map = str(target)
            self.get_logger().warning(f"the map that was at {self.map_path} is kept at {target}")
        self._keep_aside = False

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stops the worker after the frame it is fusing (joins it), then saves what no save has
        written yet (`save_on_exit`)."""
        self._stop.set()
        self._queue.close()
        if self._worker.is_alive():
            self._worker.join(timeout_s)
        if self.cfg.save_on_exit and self._unsaved:
            _, message = self._save("save on exit")  # a failed save is counted and logged by _save
            # print as well: at SIGINT the ROS logger may already be shut down with the context
            print(f"{self.get_name()}: {message}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------ callbacks (executor threads; cheap)
    def _on_color(self, msg: Image) -> None:
        self._count_received("color")
        self._camera_frame_seen = msg.header.frame_id
        self._offer(self._pairer.add_first(stamp_to_ns(msg.header.stamp), msg))

    def _on_depth(self, msg: Image) -> None:
        self._count_received("depth")
        self._offer(self._pairer.add_second(stamp_to_ns(msg.header.stamp), msg))

    def _offer(self, pair: tuple[int, Image, Image] | None) -> None:
        if pair is not None:
            with self._stats_lock:
                self._paired += 1
            self._queue.put(pair)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._count_received("camera_info")
        try:
            camera_info_to_K(msg)
        except ConversionError as err:
            self._bad("bad_camera_info", f"ignoring CameraInfo on {self.cfg.camera_info_topic}: {err}")
            return
        self._camera_info = msg

    def _on_save(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self._save("~/save_map")
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._map_lock:
            self.mapper.reset()
            self._unsaved = False  # nothing to save until a frame is fused again
            self._last_fused, self._fused_here = None, 0  # the next frame is fused wherever the camera is
            self._update_summary()
        self._queue.clear()
        self._pairer.clear()
        self._publish_requested.set()  # the worker publishes the empty map at once
        self.get_logger().info("map reset")
        response.success, response.message = True, "map reset: 0 voxels"
        return response

    def _record_pose(self) -> None:
        """Adds the camera's latest pose to the driven path (timer; never waits for TF)."""
        frame_id = self.cfg.camera_frame or self._camera_frame_seen
        if not frame_id:
            return  # no image yet says which frame the camera is
        try:
            pose = self.tf.lookup_matrix(self.cfg.map_frame, frame_id, 0, 0.0)
        except TransformError:
            return  # fusion counts and reports missing transforms; the path just waits for the next one
        if np.isfinite(pose).all():
            self.mapper.record_position(pose[:3, 3])

    def _publish_status(self) -> None:
        with self._stats_lock:
            status = {
                "node": self.get_name(), "stamp": self.get_clock().now().nanoseconds * 1e-9,
                "received": dict(self._received), "paired": self._paired, "fused": self._fused,
                "skipped": {"still": self._still},
                "queue": len(self._queue),
                "dropped": {"stale": self._queue.dropped, "unpaired": self._pairer.unpaired},
                "errors": self._bad_inputs.counts(), "tf": self.tf.counters(), "map": dict(self._map_summary),
                "timing": {k: round(v, 4) for k, v in self._timing.items()},
                "saves": {"count": self._saves, "last_path": self._last_save_path, "unsaved": self._unsaved,
                          "autosave_period_s": self.cfg.autosave_period_s, "resumed": self._resumed,
                          "previous": self._previous_map},
                "last_error": self._bad_inputs.last(),
            }
        self._status_pub.publish(String(data=json.dumps(status)))
        self._diagnostics.publish(status, hardware_id=str(self.mapper.device))

    # ------------------------------------------------------------ worker thread
    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get(timeout_s=0.2)
            if item is not None:
                self._fuse(*item)
            self._publish_map()
            self._publish_trajectory()  # also while the map does not change: TF poses extend the path
            self._publish_occupancy()
            self._autosave()

    def _fuse(self, stamp_ns: int, color: Image, depth: Image) -> None:
        info = self._camera_info
        if info is None:
            self._bad("no_camera_info", f"no valid CameraInfo on {self.cfg.camera_info_topic} yet; frame skipped")
            return
        frame_id = self.cfg.camera_frame or color.header.frame_id
        if not frame_id:
            self._bad("no_frame_id", "colour image has no header.frame_id and camera_frame is not set; frame skipped")
            return
        try:
            pose = self.tf.lookup_matrix(self.cfg.map_frame, frame_id, stamp_ns, self.cfg.tf_timeout_s)
        except TransformError as err:
            self._bad("no_transform", f"no camera pose for the frame at {stamp_ns * 1e-9:.3f} s: {err}")
            return
        try:
            frame = rgbd_frame_from_messages(color, depth, info, pose, self.cfg.depth_scale)
        except ConversionError as err:
            self._bad("bad_image", f"frame at {stamp_ns * 1e-9:.3f} s skipped: {err}")
            return
        last = self._last_fused  # read once: ~/reset_map (services thread) may clear it meanwhile
        here = self._same_place(pose, last)
        if here and self._fused_here >= self.cfg.still_max_frames and \
                time.monotonic() - last[1] < self.cfg.still_fuse_period_s:
            with self._stats_lock:  # after the checks: bad input is reported whether or not the camera moved
                self._still += 1
            return
        with self._map_lock:
            try:
                stats = self.mapper.integrate(frame)
            except FrameError as err:
                self._bad("bad_frame", f"frame at {stamp_ns * 1e-9:.3f} s rejected by the mapper: {err}")
                return
            except Exception as err:  # a fault in fusion must not take the node down
                self._bad("fusion_failed", f"fusing the frame at {stamp_ns * 1e-9:.3f} s failed: {err!r}")
                return
            # Under the map lock, with the summary: a status never shows these frames as saved early.
            self._map_changed = self._unsaved = self._occupancy_changed = True
            here = here and self._last_fused is last  # not after a reset
            self._fused_here = self._fused_here + 1 if here else 1
            self._last_fused = (last[0] if here else pose, time.monotonic())
            self._update_summary()
        latency_s = (self.get_clock().now().nanoseconds - stamp_ns) * 1e-9
        with self._stats_lock:
            self._fused += 1
            self._fuse_seconds_total += stats.seconds
            self._timing = {"last_fuse_s": stats.seconds, "mean_fuse_s": self._fuse_seconds_total / self._fused,
                            "last_latency_s": latency_s}
        if stats.points == 0:
            self._bad("no_valid_depth", f"frame at {stamp_ns * 1e-9:.3f} s had no depth within "
                                        f"[{self.mapper.config.depth_min}, {self.mapper.config.depth_max}] m")

    def _same_place(self, pose: np.ndarray, last: tuple[np.ndarray, float] | None) -> bool:
        """True when the camera is within still_motion_m and still_turn_deg of `last`, where the
        frames fused in a row at one place were taken (the first of them: slow creeping adds up).

        A parked robot streams the same view: still_max_frames of them are fused (the TSDF keeps a
        surface once several frames saw it, so a view seen from a pause must be fused a few times),
        then one per still_fuse_period_s. Fusing every one again kept a CPU core busy and changed
        the map's save with each autosave, which made the reasoner reload the map."""
        cfg = self.cfg
        if cfg.still_fuse_period_s <= 0 or last is None or not np.isfinite(pose).all():
            return False
        anchor = last[0]
        moved = float(np.linalg.norm(pose[:3, 3] - anchor[:3, 3]))
        cos = (np.trace(anchor[:3, :3].T @ pose[:3, :3]) - 1.0) / 2.0  # rotation between the two
        turned = float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
        return moved < cfg.still_motion_m and turned < cfg.still_turn_deg

    def _publish_map(self) -> None:
        """Publishes map_cloud and the object markers, at most every cloud_period_s."""
        forced = self._publish_requested.is_set()
        due = self._map_changed and time.monotonic() - self._last_cloud >= self.cfg.cloud_period_s
        if not (forced or due):
            return
        self._publish_requested.clear()
        self._map_changed = False
        self._last_cloud = time.monotonic()
        with self._map_lock:
            points, colors = map_cloud(self.mapper, self.cfg.cloud_max_points)
            objects = list(self.mapper.objects)
        stamp = self.get_clock().now().to_msg()
        self._cloud_pub.publish(pointcloud2_xyzrgb(points, colors, self.cfg.map_frame, stamp))
        try:
            self._markers_pub.publish(objects_to_markers(objects, self.cfg.map_frame, stamp, self.cfg.marker_style))
        except ConversionError as err:
            self.get_logger().warning(f"object markers not published: {err}", throttle_duration_sec=30.0)

    def _publish_trajectory(self) -> None:
        """The map's trajectory as nav_msgs/Path, when it has another pose count than the last one."""
        positions = self.mapper.visited_path()  # thread-safe copy (TF poses are added from the executor)
        if self._trajectory_pub is None or len(positions) == self._trajectory_published:
            return
        try:
            self._trajectory_pub.publish(path_msg(np.asarray(positions).reshape(-1, 3), self.cfg.map_frame,
                                                  self.get_clock().now().to_msg()))
            self._trajectory_published = len(positions)
        except ConversionError as err:
            self.get_logger().warning(f"trajectory not published: {err}", throttle_duration_sec=30.0)

    def _publish_occupancy(self) -> None:
        """Publishes the top-down occupancy for Nav2 at most every occupancy_period_s, when it changed."""
        if self._occupancy_pub is None or not self._occupancy_changed:
            return
        if time.monotonic() - self._last_occupancy < self.cfg.occupancy_period_s:
            return
        self._occupancy_changed = False
        self._last_occupancy = time.monotonic()
        with self._map_lock:
            points, _ = self.mapper.colored_points()
            visited = self.mapper.visited_xy()
        if not len(points):
            return
        occupancy = self.cfg.occupancy
        nav = NavigationMap.from_points(points, occupancy, visited)
        try:
            self._occupancy_pub.publish(occupancy_grid_msg(nav.nav2_values(), nav.grid.origin, nav.grid.cell,
                                                           occupancy.floor_z, self.cfg.map_frame,
                                                           self.get_clock().now().to_msg()))
        except ConversionError as err:
            self.get_logger().warning(f"occupancy grid not published: {err}", throttle_duration_sec=30.0)

    def _autosave(self) -> None:
        period = self.cfg.autosave_period_s
        if period and self._unsaved and time.monotonic() - self._last_autosave >= period:
            self._last_autosave = time.monotonic()
            ok, message = self._save("autosave")
            if ok:
                self.get_logger().info(message)

    # ------------------------------------------------------------ helpers
    def _save(self, why: str) -> tuple[bool, str]:
        with self._map_lock:
            if self.mapper.frames == 0:
                return False, "nothing to save: no frame has been fused yet"
            try:
                if self._keep_aside:
                    self._move_previous_map()
                path = self.mapper.save(self.map_path)
            except Exception as err:  # disk full, permissions...: report, keep mapping
                self._bad("save_failed", f"{why}: could not save the map to {self.map_path}: {err}")
                return False, f"could not save the map to {self.map_path}: {err}"
            voxels, frames = len(self.mapper.voxels), self.mapper.frames
            self._unsaved = False
        release_free_memory()  # the save's buffers: otherwise resident memory grows with every save
        with self._stats_lock:
            self._saves += 1
            self._last_save_path = str(path)
        return True, f"saved {voxels} voxels from {frames} frames to {path}"

    def _update_summary(self) -> None:
        """Called with the map lock held: the status timer reads this copy, never the mapper."""
        summary = {"voxels": len(self.mapper.voxels), "objects": len(self.mapper.objects), "frames": self.mapper.frames}
        with self._stats_lock:
            self._map_summary = summary

    def _count_received(self, stream: str) -> None:
        with self._stats_lock:
            self._received[stream] += 1

    def _bad(self, kind: str, message: str) -> None:
        """Counts a bad input of `kind`; logs it at most every warn_period_s per kind."""
        self._bad_inputs.add(kind, message, self.get_clock().now().nanoseconds * 1e-9)


def main(argv: list[str] | None = None) -> int:
    """Runs the node until SIGINT/SIGTERM; exit code 2 for invalid parameters."""
    return run_node(MapperNode, NODE_NAME, argv, threads=4, fatal=(ConfigError,))

if __name__ == "__main__":
    sys.exit(main())
