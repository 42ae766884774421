"""Posed RGB-D frames published as a robot's camera driver and localiser would: colour, depth,
CameraInfo and the camera pose on /tf, all with one stamp.

Shared by the mapper's end-to-end tests and `llm3d bench ros`, so both feed `llm3d_mapper` the
same messages. Messages are built once per frame (`frame_messages`) and only re-stamped when
published: building a 640x480 Image copies ~1 MB, which a 30 Hz publisher should not redo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_msgs.msg import TFMessage

from llm3d_core.camera_streams import CameraStreamsConfig
from llm3d_core.geometry import RGBDFrame, depth_to_metres
from llm3d_ros.conversions import (
    depth_to_compressed_depth,
    matrix_to_transform_stamped,
    ns_to_stamp,
    numpy_to_image,
    rgb_to_compressed,
    transport_topic,
)

CAMERA_FRAME = "camera_color_optical_frame"


@dataclass
class FrameMessages:
    """One frame's messages, stamped at publication."""

    color: Image | CompressedImage
    depth: Image | CompressedImage
    info: CameraInfo
    T_map_camera: np.ndarray  # (4, 4) camera pose in the map frame, published on /tf
    frame_id: str  # the camera's optical frame: the images' header.frame_id and the TF child


def frame_messages(frame: RGBDFrame, frame_id: str = CAMERA_FRAME, color_msg: Image | None = None,
                   compressed: bool = False) -> FrameMessages:
    """The messages of `frame` (rgb8 colour, 16UC1 or 32FC1 depth; compressed: jpeg colour and
    compressedDepth png millimetres, as image_transport streams them); color_msg replaces the
    colour image (tests send broken ones)."""
    h, w = frame.depth.shape
    info = CameraInfo(width=w, height=h, k=[float(v) for v in np.asarray(frame.K).ravel()])
    info.header.frame_id = frame_id
    if compressed:
        millimetres = np.round(depth_to_metres(frame.depth, frame.depth_scale) * 1000.0).clip(0, 65535).astype(np.uint16)
        return FrameMessages(color=color_msg if color_msg is not None else rgb_to_compressed(frame.rgb, "jpeg", frame_id),
                             depth=depth_to_compressed_depth(millimetres, frame_id), info=info,
                             T_map_camera=np.asarray(frame.T_world_camera, dtype=np.float64), frame_id=frame_id)
    depth_encoding = "16UC1" if frame.depth.dtype == np.uint16 else "32FC1"
    depth = frame.depth if depth_encoding == "16UC1" else frame.depth.astype(np.float32)
    return FrameMessages(color=color_msg if color_msg is not None else numpy_to_image(frame.rgb, "rgb8", frame_id),
                         depth=numpy_to_image(depth, depth_encoding, frame_id), info=info,
                         T_map_camera=np.asarray(frame.T_world_camera, dtype=np.float64), frame_id=frame_id)


class CameraFeed:
    """Publishers of a camera's colour, depth and CameraInfo topics and of /tf, on `node`."""

    def __init__(self, node: Node, qos: QoSProfile | int = 10, map_frame: str = "map",
                 streams: CameraStreamsConfig | None = None, compressed: bool = False) -> None:
        """streams: the topics (default: the names llm3d_mapper reads by default)."""
        self.map_frame = map_frame
        s = streams or CameraStreamsConfig()
        if compressed:  # image_transport's compressed colour and compressedDepth depth topics
            self.color = node.create_publisher(CompressedImage, transport_topic(s.color_topic, "compressed"), qos)
            self.depth = node.create_publisher(CompressedImage, transport_topic(s.depth_topic, "compressedDepth"), qos)
        else:
            self.color = node.create_publisher(Image, s.color_topic, qos)
            self.depth = node.create_publisher(Image, s.depth_topic, qos)
        self.info = node.create_publisher(CameraInfo, s.camera_info_topic, qos)
        # Deep and reliable: a lost pose means a frame the mapper cannot place.
        self.tf = node.create_publisher(TFMessage, "/tf", 100)

    def subscribed(self) -> bool:
        """Whether something listens to colour, depth and /tf (discovery is done)."""
        return all(p.get_subscription_count() > 0 for p in (self.color, self.depth, self.tf))

    def publish(self, msgs: FrameMessages, stamp_ns: int, with_tf: bool = True) -> None:
        """Publishes the frame stamped `stamp_ns`; TF first, so the pose is there when the images arrive."""
        stamp = ns_to_stamp(stamp_ns)
        if with_tf:
            self.tf.publish(TFMessage(transforms=[
                matrix_to_transform_stamped(msgs.T_map_camera, self.map_frame, msgs.frame_id, stamp)]))
        for msg in (msgs.info, msgs.color, msgs.depth):
            msg.header.stamp = stamp
        self.info.publish(msgs.info)
        self.color.publish(msgs.color)
        self.depth.publish(msgs.depth)
