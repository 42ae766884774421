"""Configuration of the `llm3d_reasoner` node (its `ros__parameters` section in launch/llm3d.yaml).

No rclpy here: the CLI and tests build and validate it from the YAML file alone. `model:` is the
3D-LLM's own Llm3dConfig, the one `llm3d train|eval|ask` read; `reasoner:` is the core
ReasonerConfig (sessions, grounding, goal selection).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from llm3d_core.camera_streams import CameraInputConfig
from llm3d_core.config import require_non_empty, require_non_negative, require_positive
from llm3d_core.encoders import EncoderConfig
from llm3d_core.model.configuration_llm3d import Llm3dConfig
from llm3d_core.reasoner import ReasonerConfig

MAX_SUCCESS_DISTANCE = 10.0  # metres; anything farther is not "at" the target in a room-scale map


@dataclass
class FrameInputConfig(CameraInputConfig):
    """Answers about the camera's current view while no map exists (UniVLG's single-view input).

    Fields:
        enabled: while no map is loaded, subscribe to the camera and answer ask, ground and plan
            about the newest colour + depth pair, lifted to 3D in camera coordinates (boxes in the
            camera's optical frame; navigation waits for a map). Subscribed only once the
            model is ready and no map is saved, ended when the first map loads, so a mapped robot
            pays nothing for them.
        color_topic, depth_topic, camera_info_topic: the streams llm3d_mapper reads.
        color_transport, depth_transport: image_transport of the inputs, as llm3d_mapper's: 'raw'
            (sensor_msgs/Image on the topic), colour 'compressed' (CompressedImage jpeg/png on
            <topic>/compressed), depth 'compressedDepth' (<topic>/compressedDepth) or 'compressed'.
        camera_frame: the frame boxes are reported in; '' = the colour image's header.frame_id.
        depth_scale: 16UC1 units per metre (as llm3d_mapper's).
        sync_tolerance_s: colour and depth pair when their stamps differ by at most this.
        max_age_s: a view received longer ago than this is not answered about (a stalled camera
            must not answer for the present).
        sample_stride, depth_min, depth_max, encoder: how a view is lifted and encoded; keep them
            equal to llm3d_mapper's `mapper:` values, since the model was trained on maps made so.
    """

    enabled: bool = True
    max_age_s: float = 5.0
    sample_stride: int = 8
    depth_min: float = 0.1
    depth_max: float = 5.0
    encoder: EncoderConfig = field(default_factory=EncoderConfig)

    field_prefix: ClassVar[str] = "frame_input."

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("max_age_s", "depth_max"):
            require_positive(f"frame_input.{name}", getattr(self, name))
        require_non_negative("frame_input.depth_min", self.depth_min)
        if not isinstance(self.sample_stride, int) or self.sample_stride < 1:
            raise ValueError(f"frame_input.sample_stride must be an integer >= 1, got {self.sample_stride!r}")
        if self.depth_min >= self.depth_max:
            raise ValueError(f"frame_input.depth_min ({self.depth_min}) must be below depth_max ({self.depth_max})")


@dataclass
class ReasonerNodeConfig:
    """Parameters of the reasoner node.

    Fields:
        map_dir: the map folder the reasoner answers about: the mapper's `map_path` (it saves
            there on ~/save_map and autosave) or an offline map saved by `llm3d map`. Relative
            paths resolve against the working directory, like the mapper's.
        map_poll_period_s: how often map_dir's manifest is checked; a new save is loaded in the
            inference worker (a manifest read, no I/O of the map itself when unchanged).
        mapper_save_service: a std_srvs/Trigger service that saves the live map to map_dir
            (the mapper's `~/save_map`); the reasoner calls it every map_refresh_period_s while
            the mapper's status says the map has unsaved changes, so answers follow the live map
            without the mapper having to autosave. '' turns this off (offline maps).
        mapper_status_topic: the mapper's status (JSON); its saves.unsaved flag avoids needless saves.
        map_refresh_period_s: seconds between save requests (0: never request).
        map_frame: frame of the map, of every box and goal.
        base_frame: the robot frame whose position in map_frame (from TF) is the robot pose.
        goal_topic: geometry_msgs/PoseStamped goals (the Nav2 `goal_pose` convention).
        cmd_vel_topic: a zero geometry_msgs/Twist is sent here when a navigation is cancelled or
            times out (the sim bridge and most base drivers stop on it; Nav2 users cancel Nav2 too).
        markers_topic: visualization_msgs/MarkerArray of grounding results (transient local).
        relevancy_topic: sensor_msgs/PointCloud2 (x, y, z, rgb; transient local) of the map's voxels
            coloured by their open-vocabulary score for the last ground query (blue low, red high),
            published with every ground request on a map with text-aligned features; '' = off.
        relevancy_max_points: cap on its points (evenly subsampled beyond it).
        status_topic: std_msgs/String JSON: model and map state, counters, latencies.
        status_period_s: seconds between status messages.
        diagnostics_topic: diagnostic_msgs/DiagnosticArray with this node's health (level, message,
            the status as key/values; rules in llm3d_ros.diagnostics), published with every status.
            Absolute '/diagnostics' by default: one topic per ROS graph, where rqt_robot_monitor and
            diagnostic_aggregator look (under a namespace the status name carries it). '' = off.
        diagnostics_window_s: counters (errors, drops, rates) are judged over the last this many seconds.
        default_success_distance: metres, when a NavigateTo goal asks for <= 0.
        max_success_distance: larger requested success distances are refused as absurd.
        navigate_timeout_s: a navigation not within its success distance after this long is aborted.
        feedback_period_s: seconds between NavigateTo feedback messages.
        tf_timeout_s: how long to wait for the robot pose in TF.
        request_timeout_s: a service request that waited this long for the model (queued behind
            others, or a slow device) answers success=False.
        max_pending: requests queued for the inference worker beyond this are refused at once
            with "busy, retry in N s" (a burst cannot pile up minutes of work). Every request
            gets a reply: the answer, a refusal, or "no answer within request_timeout_s".
        service_queue_depth: DDS history of the ask/ground/plan services and the navigate_to
            action's services; 0 = keep all (a burst of any size is queued by DDS until the node
            takes it, then answered or refused). A depth N drops the oldest of more than N
            requests that arrive before the node takes them, as every KEEP_LAST queue does.
        progress_timeout_s: a navigation whose robot has not come progress_min_m closer to the
            goal for this long is aborted (the base refused the goal, is stuck, or TF stopped).
        progress_min_m: metres of approach that count as progress.
        goal_status_topic: action_msgs/GoalStatusArray of the base following goal_pose ('' =
            none). A goal there that ends ABORTED or CANCELED after ours was published aborts the
            navigation with the base's reason. Nav2: /navigate_to_pose/_action/status; the sim
            bridge publishes goal_status.
        checkpoint: 'auto' (the repo's checkpoints/llm3d-objects when present, else an untrained
            model), '' (an untrained model from `model:`; answers are arbitrary, a warning is
            logged), or a checkpoint folder (model.safetensors + config.json; its config wins
            over `model:` except device and a non-empty llm_path / llm_cache).
        device: '' = model.device; auto | cpu | cuda | cuda:N (`llm3d bringup --device` sets it).
        torch_threads: CPU threads for torch inference (0: torch's default, one per core). 1 by
            default: the reasoner shares the CPU with the mapper and the rest of the robot, and a
            torch op split over every core waits for its slowest thread, so a thread that loses
            its core to another process stalls every op: beside two busy processes on 2 cores, a
            pointer pass took 9 s at 2 threads and 0.8 s at 1 (0.5 s either way on an idle CPU;
            README, "CPU threads"). Raise it on a CPU the reasoner has to itself.
        llm_dtype: how this machine holds the frozen LLM's weights: auto (bfloat16 where the CPU/GPU
            computes it natively: half the memory, faster; else float32) | float32 | bfloat16 | float16.
            Overrides the checkpoint's (a runtime choice; training always uses float32).
        reasoner: the core ReasonerConfig (sessions, grounding mode, goal selection).
        frame_input: answers about the camera's current view before any map exists (FrameInputConfig).
        model: the 3D-LLM config (llm3d_core.model.configuration_llm3d.Llm3dConfig).
    """

    map_dir: str = "llm3d_map"
    map_poll_period_s: float = 1.0
    mapper_save_service: str = "llm3d_mapper/save_map"
    mapper_status_topic: str = "llm3d_mapper/status"
    map_refresh_period_s: float = 5.0
    map_frame: str = "map"
    base_frame: str = "base_link"
    goal_topic: str = "goal_pose"
    cmd_vel_topic: str = "cmd_vel"
    markers_topic: str = "grounding/markers"
    relevancy_topic: str = "grounding/relevancy"
    relevancy_max_points: int = 100_000
    status_topic: str = "~/status"
    status_period_s: float = 1.0
    diagnostics_topic: str = "/diagnostics"
    diagnostics_window_s: float = 10.0
    default_success_distance: float = 1.0
    max_success_distance: float = MAX_SUCCESS_DISTANCE
    navigate_timeout_s: float = 180.0
    feedback_period_s: float = 0.5
    tf_timeout_s: float = 0.5
    request_timeout_s: float = 120.0
    max_pending: int = 4
    service_queue_depth: int = 0
    progress_timeout_s: float = 20.0
    progress_min_m: float = 0.1
    goal_status_topic: str = "goal_status"
    checkpoint: str = "auto"
    device: str = ""
    torch_threads: int = 1
    llm_dtype: str = "auto"
    reasoner: ReasonerConfig = field(default_factory=ReasonerConfig)
    frame_input: FrameInputConfig = field(default_factory=FrameInputConfig)
    model: Llm3dConfig = field(default_factory=Llm3dConfig)

    def __post_init__(self) -> None:
        for name in ("map_dir", "map_frame", "base_frame", "goal_topic", "cmd_vel_topic", "markers_topic",
                     "status_topic"):
            require_non_empty(name, getattr(self, name))
        for name in ("mapper_save_service", "mapper_status_topic", "checkpoint", "device", "goal_status_topic",
                     "diagnostics_topic", "relevancy_topic"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in ("map_poll_period_s", "status_period_s", "default_success_distance", "max_success_distance",
                     "navigate_timeout_s", "feedback_period_s", "request_timeout_s", "progress_timeout_s",
                     "progress_min_m", "diagnostics_window_s"):
            require_positive(name, getattr(self, name))
        for name in ("map_refresh_period_s", "tf_timeout_s"):
            require_non_negative(name, getattr(self, name))
        if self.default_success_distance > self.max_success_distance:
            raise ValueError(f"default_success_distance ({self.default_success_distance}) exceeds "
                             f"max_success_distance ({self.max_success_distance})")
        if not isinstance(self.max_pending, int) or not 1 <= self.max_pending <= 64:
            raise ValueError(f"max_pending must be an integer in [1, 64], got {self.max_pending!r}")
        if not isinstance(self.service_queue_depth, int) or not 0 <= self.service_queue_depth <= 10_000:
            raise ValueError(f"service_queue_depth must be an integer in [0, 10000] (0 = keep all), "
                             f"got {self.service_queue_depth!r}")
        from llm3d_core.model.configuration_llm3d import LLM_DTYPES

        if self.llm_dtype not in LLM_DTYPES:
            raise ValueError(f"llm_dtype must be one of {LLM_DTYPES}, got {self.llm_dtype!r}")
        if not isinstance(self.relevancy_max_points, int) or self.relevancy_max_points < 1:
            raise ValueError(f"relevancy_max_points must be an integer >= 1, got {self.relevancy_max_points!r}")
        if not isinstance(self.torch_threads, int) or self.torch_threads < 0:
            raise ValueError(f"torch_threads must be an integer >= 0, got {self.torch_threads!r}")
        if self.device:
            from llm3d_core.device import validate_device_name

            validate_device_name(self.device)

    def checkpoint_path(self) -> Path | None:
        """The checkpoint folder to load, or None for an untrained model ('' or 'auto' without one)."""
        if self.checkpoint == "auto":
            from llm3d_core.assets import shipped_checkpoint

            return shipped_checkpoint()
        return Path(self.checkpoint).expanduser() if self.checkpoint else None

    def model_device(self) -> str:
        return self.device or self.model.device

    def checkpoint_overrides(self) -> dict[str, str]:
        """What this node's parameters change in a checkpoint's stored config."""
        overrides = {"device": self.model_device()}
        for name in ("llm_path", "llm_cache"):
            if getattr(self.model, name):  # a machine-specific path: the local one wins when given
                overrides[name] = getattr(self.model, name)
        overrides["llm_dtype"] = self.llm_dtype  # how this machine holds the frozen LLM, not a trained choice
        return overrides

