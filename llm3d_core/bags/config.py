"""Configuration of bag reading and writing: the `llm3d_bag: ros__parameters: bag:` section of launch/llm3d.yaml."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from llm3d_core.camera_streams import CameraStreamsConfig

STORAGES = ("mcap", "sqlite3")
COLOR_FORMATS = ("raw", "jpeg", "png")
DEPTH_FORMATS = ("16UC1", "32FC1", "png")


@dataclass
class BagConfig(CameraStreamsConfig):
    """Topics, frames and encodings of recorded bags.

    Fields:
        color_topic, depth_topic, camera_info_topic: camera streams; absolute names, as a bag
            recorded at the root namespace stores them. Each may hold sensor_msgs/Image or
            sensor_msgs/CompressedImage (jpeg/png colour; compressedDepth or 16-bit png depth).
        tf_topic, tf_static_topic: tf2_msgs/TFMessage streams.
        odom_topic: nav_msgs/Odometry written by `record-sim` (not needed for reading).
        instance_topic: optional 16UC1 instance-id image (simulator ground truth: 0 structure,
            >= 1 objects, 65535 no hit); read when present, '' to neither read nor write it.
        map_frame: the fixed frame poses are looked up in.
        camera_frame: the TF frame of the camera when reading; '' takes the colour image's
            header.frame_id (as the mapper node does).
        optical_frame: header.frame_id the writers stamp images with (the camera optical frame).
        odom_frame, base_frame: frames of the TF tree `record-sim` writes (map -> odom -> base -> optical).
        depth_scale: 16UC1 units per metre (1000 = millimetres), reading and writing.
        sync_tolerance_s: colour and depth pair when their stamps differ by at most this.
        tf_timeout_s: a pair waits this long in bag time for late TF before its pose is looked up
            (the node's tf_timeout_s, measured on the bag's receive clock).
        tf_cache_s: /tf history kept per frame.
        storage: 'mcap' (rosbag2's default since Iron) or 'sqlite3', for writing.
        color_format: writing: 'raw' (rgb8 Image) or 'jpeg' / 'png' (CompressedImage).
        depth_format: writing: '16UC1' or '32FC1' (Image), or 'png' (CompressedImage,
            "16UC1; compressedDepth png").
        jpeg_quality: writing: quality of jpeg colour (1..100).
        start_time_s: writing: stamp of the first frame of `from-frames` and `record-sim` (ROS time
            0 means "latest" in TF lookups, so frames never start there).
    """

    # CameraStreamsConfig's streams, as absolute names
    color_topic: str = "/camera/color/image_raw"
    depth_topic: str = "/camera/depth/image_raw"
    camera_info_topic: str = "/camera/color/camera_info"
    tf_topic: str = "/tf"
    tf_static_topic: str = "/tf_static"
    odom_topic: str = "/odom"
    instance_topic: str = "/camera/instance/image_raw"
    map_frame: str = "map"
    camera_frame: str = ""
    optical_frame: str = "camera_color_optical_frame"
    odom_frame: str = "odom"
    base_frame: str = "base_link"
    sync_tolerance_s: float = 0.02
    tf_timeout_s: float = 0.2
    tf_cache_s: float = 30.0
    storage: str = "mcap"
    color_format: str = "raw"
    depth_format: str = "16UC1"
    jpeg_quality: int = 95
    start_time_s: float = 1_700_000_000.0

    def __post_init__(self) -> None:
        for name in ("color_topic", "depth_topic", "camera_info_topic", "tf_topic", "tf_static_topic", "odom_topic"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.startswith("/") or len(value) < 2:
                raise ValueError(f"{name} must be an absolute topic name like '/camera/color/image_raw', got {value!r}")
        if not isinstance(self.instance_topic, str) or (self.instance_topic and not self.instance_topic.startswith("/")):
            raise ValueError(f"instance_topic must be '' or an absolute topic name, got {self.instance_topic!r}")
        for name in ("map_frame", "optical_frame", "odom_frame", "base_frame"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip("/ "):
                raise ValueError(f"{name} must be a non-empty frame id, got {value!r}")
        if not isinstance(self.camera_frame, str):
            raise ValueError(f"camera_frame must be a string ('' = the image's frame_id), got {self.camera_frame!r}")
        if len({self.map_frame, self.odom_frame, self.base_frame, self.optical_frame}) != 4:
            raise ValueError(f"map_frame, odom_frame, base_frame and optical_frame must differ, got {self.map_frame!r}, "
                             f"{self.odom_frame!r}, {self.base_frame!r}, {self.optical_frame!r}")
        super().__post_init__()  # depth_scale
        _check("sync_tolerance_s", self.sync_tolerance_s)
        _check("tf_timeout_s", self.tf_timeout_s)
        _check("tf_cache_s", self.tf_cache_s, positive=True)
        _check("start_time_s", self.start_time_s, positive=True)
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {self.storage!r}")
        if self.color_format not in COLOR_FORMATS:
            raise ValueError(f"color_format must be one of {', '.join(COLOR_FORMATS)}, got {self.color_format!r}")
        if self.depth_format not in DEPTH_FORMATS:
            raise ValueError(f"depth_format must be one of {', '.join(DEPTH_FORMATS)}, got {self.depth_format!r}")
        if not (isinstance(self.jpeg_quality, int) and 1 <= self.jpeg_quality <= 100):
            raise ValueError(f"jpeg_quality must be an integer in [1, 100], got {self.jpeg_quality!r}")

    @property
    def required_topics(self) -> dict[str, str]:
        """Field name -> topic of the streams a posed frame cannot be built without."""
        return {"color_topic": self.color_topic, "depth_topic": self.depth_topic,
                "camera_info_topic": self.camera_info_topic}


def _check(name: str, value: float, positive: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


def load_bag_config(path: str | Path | None = None, overrides: dict | None = None) -> BagConfig:
    """The `llm3d_bag: ros__parameters: bag:` section of `path` (default launch/llm3d.yaml), with overrides."""
    from llm3d_core.config import DEFAULT_CONFIG, config_from_dict, load_yaml, node_parameters

    params = dict(node_parameters(load_yaml(path or DEFAULT_CONFIG), "llm3d_bag").get("bag", {}) or {})
    params.update(overrides or {})
    return config_from_dict(BagConfig, params, "llm3d_bag.bag")
