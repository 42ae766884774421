"""The RGB-D camera's streams: one config piece for every component that reads or writes them.

`llm3d_mapper`, the reasoner's `frame_input`, the sim bridge and bags all name the same three
streams and the same depth units; they inherit the fields from here (flat, so parameter names and
YAML keys stay `color_topic`, `depth_scale`, ...), as lerobot shares its camera configs between
robots. Nodes that read the streams also say how they arrive (`CameraInputConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from llm3d_core.config import require_non_empty, require_non_negative, require_positive

# image_transport plugins the camera inputs accept.
COLOR_TRANSPORTS = ("raw", "compressed")
DEPTH_TRANSPORTS = ("raw", "compressed", "compressedDepth")
STREAM_TOPICS = ("color_topic", "depth_topic", "camera_info_topic")


@dataclass
class CameraStreamsConfig:
    """An RGB-D camera's streams as its ROS driver publishes them (realsense2_camera's names).

    Fields:
        color_topic, depth_topic, camera_info_topic: colour image, depth image registered to
            colour, and the colour camera's CameraInfo. Nodes use relative names (resolved in the
            node's namespace, remappable); bags record absolute ones.
        depth_scale: 16UC1 depth units per metre (1000 = millimetres), reading and writing.
    """

    color_topic: str = "camera/color/image_raw"
    depth_topic: str = "camera/depth/image_raw"
    camera_info_topic: str = "camera/color/camera_info"
    depth_scale: float = 1000.0

    # How the piece is named in error messages where it is nested ("frame_input.").
    field_prefix: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name in STREAM_TOPICS:
            require_non_empty(self.field_prefix + name, getattr(self, name))
        require_positive(self.field_prefix + "depth_scale", self.depth_scale)


@dataclass
class CameraInputConfig(CameraStreamsConfig):
    """The streams as a node reads them: transport, frame and colour/depth pairing.

    Fields:
        color_transport, depth_transport: image_transport of the inputs: 'raw' (sensor_msgs/Image
            on the topic itself) or, as robots stream over Wi-Fi, 'compressed' (CompressedImage,
            jpeg/png, on <color_topic>/compressed) and 'compressedDepth' (png depth on
            <depth_topic>/compressedDepth; 'compressed' takes a 16-bit png there too).
        camera_frame: overrides the images' header.frame_id ('' = use it).
        sync_tolerance_s: colour and depth pair when their stamps differ by at most this.
    """

    color_transport: str = "raw"
    depth_transport: str = "raw"
    camera_frame: str = ""
    sync_tolerance_s: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        p = self.field_prefix
        if self.color_transport not in COLOR_TRANSPORTS:
            raise ValueError(f"{p}color_transport must be one of {', '.join(COLOR_TRANSPORTS)}, "
                             f"got {self.color_transport!r}")
        if self.depth_transport not in DEPTH_TRANSPORTS:
            raise ValueError(f"{p}depth_transport must be one of {', '.join(DEPTH_TRANSPORTS)}, "
                             f"got {self.depth_transport!r}")
        if not isinstance(self.camera_frame, str):
            raise ValueError(f"{p}camera_frame must be a string ('' = the image's frame_id), got {self.camera_frame!r}")
        require_non_negative(p + "sync_tolerance_s", self.sync_tolerance_s)
