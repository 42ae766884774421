"""Configuration of the `llm3d_mapper` node (its `ros__parameters` section in launch/llm3d.yaml).

No rclpy here: the CLI and tests build and validate it from the YAML file alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llm3d_core.camera_streams import CameraInputConfig
from llm3d_core.config import require_non_empty, require_non_negative, require_positive
from llm3d_core.mapping.goals import GoalConfig
from llm3d_core.mapping.mapper import MapperConfig


@dataclass
class MapperNodeConfig(CameraInputConfig):
    """Parameters of the mapper node; `mapper` is the core MapperConfig, unchanged. The camera
    fields (topics, transports, camera_frame, depth_scale, sync_tolerance_s) are CameraInputConfig's.

    Fields:
        color_topic, depth_topic, camera_info_topic: inputs, relative names (resolved in the
            node's namespace, remappable). Colour: rgb8, bgr8, rgba8, bgra8 or mono8. Depth:
            16UC1/mono16 (units of 1/depth_scale m) or 32FC1 (metres), registered to colour.
        color_transport, depth_transport: image_transport of the inputs: 'raw' (sensor_msgs/Image
            on the topic itself) or, as robots stream over Wi-Fi, 'compressed' (CompressedImage,
            jpeg/png, on <color_topic>/compressed) and 'compressedDepth' (png depth on
            <depth_topic>/compressedDepth; 'compressed' takes a 16-bit png there too).
        map_cloud_topic, markers_topic: outputs (PointCloud2 xyz+rgb, MarkerArray of object
            boxes), transient local so RViz or a late subscriber gets the latest map at once.
        status_topic: std_msgs/String JSON with counters (see the node's module docstring);
            '~/status' is the node's private namespace.
        map_frame: the fixed frame the map is built in and published in.
        occupancy_topic: nav_msgs/OccupancyGrid of the map for Nav2 (reliable, transient local,
            as Nav2's map_server; '' = off). Values 0 free floor (seen or driven over), 100
            obstacle, -1 unknown; not inflated (Nav2's costmaps inflate). 'map' is the Nav2
            topic, relative so a namespace applies.
        occupancy_period_s: seconds between /map updates while the map changes.
        trajectory_topic: nav_msgs/Path of where the camera has been (map frame, transient local;
            the map's saved trajectory: a pose per 0.25 m moved, kept across a resume), published
            whenever it grew. RViz's Path display draws it; '' = off.
        occupancy: the height band and cell of the grid (GoalConfig: floor_z, robot_height,
            clearance, cell, floor_fill, robot_radius); keep it equal to llm3d_reasoner's
            reasoner.goals so the goals it publishes lie in free cells of this grid.
        camera_frame: the camera optical frame to look up in TF; '' takes the colour image's
            header.frame_id (the usual case).
        depth_scale: integer depth units per metre (1000 = millimetres).
        sync_tolerance_s: colour and depth pair when their stamps differ by at most this (0:
            exact stamps only, right for registered RGB-D drivers that stamp both alike).
        queue_size: paired frames waiting for the fusion worker; when full the oldest is
            dropped and counted, so the map keeps up with the newest frames instead of lagging.
        still_max_frames, still_fuse_period_s, still_motion_m, still_turn_deg: with
            still_fuse_period_s > 0, a still camera (within still_motion_m and still_turn_deg of
            where the last fused frames were taken) has still_max_frames of its frames fused, then
            one per still_fuse_period_s; the others are skipped and counted (skipped.still). For a
            robot that parks for long: it streams the same view at 30 Hz, and fusing each again
            keeps a CPU core busy and changes the map's save with every autosave, which makes the
            reasoner reload the map and name its objects again. Off by default (0: every frame
            fused): the TSDF keeps a surface only once several frames saw it, and the floor seen
            during a drive's pauses counts toward that. In the demo's drive, the observed free
            floor came to 6,255 cells with every repeat skipped and 7,459 with 5 fused per place,
            against 7,867-9,746 with every frame fused, and the full-chain test found no free
            floor near its grounded targets in 1 of 2 runs with the rule on.
        tf_timeout_s: how long the worker waits for a transform at the image stamp (TF usually
            arrives shortly after the images).
        tf_cache_s: how much /tf history the buffer keeps.
        pose_period_s: how often the camera's latest pose is added to the map's driven path
            (navigation counts the floor the robot drove over as free), whether or not a frame
            was fused then: a mapper that fuses slower than the robot moves would otherwise
            leave gaps that cut the path apart. 0: only the poses of fused frames.
        cloud_period_s: minimum seconds between map_cloud/markers publications (building a
            cloud of the whole map is not free); 0 publishes after every fused frame.
        cloud_max_points: cap on published cloud points (evenly subsampled beyond it).
        marker_style: 'line_list' (wireframe boxes) or 'cube' (translucent boxes).
        status_period_s: seconds between status messages.
        diagnostics_topic: diagnostic_msgs/DiagnosticArray with this node's health (level, message,
            the status as key/values; rules in llm3d_ros.diagnostics), published with every status.
            Absolute '/diagnostics' by default: one topic per ROS graph, where rqt_robot_monitor and
            diagnostic_aggregator look (under a namespace the status name carries it). '' = off.
        diagnostics_window_s: counters (errors, drops, rates) are judged over the last this many seconds.
        frame_timeout_s: diagnostics WARN "no camera frames for N s" after this long without an
            image (STALE until the first one).
        max_drop_ratio: diagnostics WARN when more than this share of the images received in the
            window was dropped. queue_size 1 sheds load on purpose: a CPU mapper under a 30 Hz camera
            fuses 3-7 frames/s (README), i.e. drops 77-91 %; 0.8 flags fusion keeping under one
            image in five, or colour and depth that do not pair.
        map_path: folder ~/save_map and autosave write (relative to the working directory).
        autosave_period_s: save the map every N seconds when it changed (0: off). Bounds what a
            crash (SIGKILL, power loss) can lose; saves are incremental, so a period costs little.
        save_on_exit: save the map on a clean stop (SIGINT/SIGTERM, `llm3d bringup` stopping) when
            it holds frames no save has written yet, so a restart resumes where the robot was.
        resume: load the map at map_path on start when one is there (a restarted or respawned
            mapper continues from its last save). Whenever a map there is not resumed (resume
            false, or it cannot be loaded), it is never overwritten: the first save renames the
            folder to <map_path>.previous-<UTC time> beside it (named in the log and the status).
        warn_period_s: a warning about the same kind of bad input is logged at most this often
            (every occurrence is still counted in the status).
        device: overrides mapper.device when not '' (`llm3d bringup --device` sets it).
        mapper: the core mapper's configuration (llm3d_core.mapping.mapper.MapperConfig).
    """

    map_cloud_topic: str = "map_cloud"
    markers_topic: str = "objects/markers"
    status_topic: str = "~/status"
    map_frame: str = "map"
    occupancy_topic: str = "map"
    occupancy_period_s: float = 2.0
    trajectory_topic: str = "trajectory"
    occupancy: GoalConfig = field(default_factory=GoalConfig)
    queue_size: int = 1
    still_max_frames: int = 5
    still_fuse_period_s: float = 0.0
    still_motion_m: float = 0.02
    still_turn_deg: float = 2.0
    tf_timeout_s: float = 0.2
    tf_cache_s: float = 10.0
    pose_period_s: float = 0.2
    cloud_period_s: float = 1.0
    cloud_max_points: int = 200_000
    marker_style: str = "line_list"
    status_period_s: float = 1.0
    diagnostics_topic: str = "/diagnostics"
    diagnostics_window_s: float = 10.0
    frame_timeout_s: float = 3.0
    max_drop_ratio: float = 0.8
    map_path: str = "llm3d_map"
    autosave_period_s: float = 60.0
    save_on_exit: bool = True
    resume: bool = True
    warn_period_s: float = 5.0
    device: str = ""
    mapper: MapperConfig = field(default_factory=MapperConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("map_cloud_topic", "markers_topic", "status_topic", "map_frame", "map_path"):
            require_non_empty(name, getattr(self, name))
        if not 1 <= self.queue_size <= 30:
            raise ValueError(f"queue_size must be in [1, 30] (bounded on purpose), got {self.queue_size}")
        if not isinstance(self.still_max_frames, int) or self.still_max_frames < 1:
            raise ValueError(f"still_max_frames must be an integer >= 1, got {self.still_max_frames!r}")
        require_non_negative("still_fuse_period_s", self.still_fuse_period_s)
        require_non_negative("still_motion_m", self.still_motion_m)
        require_non_negative("still_turn_deg", self.still_turn_deg)
        require_non_negative("tf_timeout_s", self.tf_timeout_s)
        require_positive("tf_cache_s", self.tf_cache_s)
        require_non_negative("pose_period_s", self.pose_period_s)
        require_non_negative("cloud_period_s", self.cloud_period_s)
        if self.cloud_max_points < 1:
            raise ValueError(f"cloud_max_points must be >= 1, got {self.cloud_max_points}")
        if self.marker_style not in ("line_list", "cube"):
            raise ValueError(f"marker_style must be 'line_list' or 'cube', got {self.marker_style!r}")
        if not isinstance(self.trajectory_topic, str):
            raise ValueError(f"trajectory_topic must be a string ('' = off), got {self.trajectory_topic!r}")
        if not isinstance(self.occupancy_topic, str):
            raise ValueError(f"occupancy_topic must be a string ('' = off), got {self.occupancy_topic!r}")
        require_positive("occupancy_period_s", self.occupancy_period_s)
        require_positive("status_period_s", self.status_period_s)
        if not isinstance(self.diagnostics_topic, str):
            raise ValueError(f"diagnostics_topic must be a string ('' = off), got {self.diagnostics_topic!r}")
        require_positive("diagnostics_window_s", self.diagnostics_window_s)
        require_positive("frame_timeout_s", self.frame_timeout_s)
        if not (isinstance(self.max_drop_ratio, (int, float)) and 0 < self.max_drop_ratio <= 1):
            raise ValueError(f"max_drop_ratio must be in (0, 1], got {self.max_drop_ratio!r}")
        require_non_negative("autosave_period_s", self.autosave_period_s)
        require_non_negative("warn_period_s", self.warn_period_s)
        if not isinstance(self.device, str):
            raise ValueError(f"device must be a string ('' = mapper.device), got {self.device!r}")
        if self.device:
            from llm3d_core.device import validate_device_name

            validate_device_name(self.device)

    def core_config(self) -> MapperConfig:
        """The MapperConfig to build the mapper with (`device` applied)."""
        import dataclasses

        return dataclasses.replace(self.mapper, device=self.device) if self.device else self.mapper

