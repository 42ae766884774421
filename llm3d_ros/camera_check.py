"""Probe a live camera driver for `llm3d doctor --camera PROFILE`.

Joins the ROS graph as one node (in the stack's namespace, with /tf and /tf_static remapped as
`llm3d_ros.node_set` does), subscribes to the profile's colour, depth and CameraInfo topics and
to TF for a window, then hands what it saw to `llm3d_core.camera_checks`, where every judgement
lives. Subscriptions are best effort, which matches reliable and best-effort drivers alike.
"""

from __future__ import annotations

import time

from llm3d_core.camera_checks import CameraCheck, StreamSample, judge_all, stamps_between
from llm3d_core.camera_profiles import CameraProfile
from llm3d_core.tf_tree import TransformError

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
RATE_WINDOW_S = 2.0  # once everything is there, this much of the stream is enough to measure its rate
TF_WAIT_S = 0.2  # as llm3d_mapper's tf_timeout_s: TF may arrive a little after the images


def _stream_topics(profile: CameraProfile) -> dict[str, tuple[str, str]]:
    """role -> (topic, type name) as the mapper subscribes them for the profile's transports."""
    from llm3d_ros.conversions import transport_topic

    def image(topic: str, transport: str) -> tuple[str, str]:
        return transport_topic(topic, transport), IMAGE_TYPE if transport == "raw" else COMPRESSED_TYPE

    return {"color": image(profile.color_topic, profile.color_transport),
            "depth": image(profile.depth_topic, profile.depth_transport),
            "info": (profile.camera_info_topic, INFO_TYPE)}


def probe_camera(profile: CameraProfile, timeout_s: float, namespace: str = "") -> list[CameraCheck]:
    """Watches the graph for up to `timeout_s` (less once every stream and the TF chain are there) and
    returns the profile's checks. Call with llm3d's ROS environment applied (llm3d_ros.env)."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    from llm3d_ros.listener import stack_listener
    from llm3d_ros.tf_buffer import TfListenerBuffer

    classes = {IMAGE_TYPE: Image, COMPRESSED_TYPE: CompressedImage, INFO_TYPE: CameraInfo}
    samples: dict[str, StreamSample] = {}
    with stack_listener("llm3d_doctor_camera", namespace) as (node, executor):
        for role, (topic, type_name) in _stream_topics(profile).items():
            sample = samples[role] = StreamSample(node.resolve_topic_name(topic), type_name)

            def on_msg(msg, sample=sample) -> None:
                sample.arrivals_s.append(time.monotonic())
                sample.stamps_ns.append(int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec))
                sample.last = msg

            node.create_subscription(classes[type_name], topic, on_msg, qos_profile_sensor_data)
        tf = TfListenerBuffer(node, cache_s=timeout_s + 10.0)
        start = time.monotonic()
        deadline = start + timeout_s
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            if _complete(samples, tf, profile, start, timeout_s):
                break
        window_s = time.monotonic() - start
        for sample in samples.values():
            sample.publisher_types = [info.topic_type for info in node.get_publishers_info_by_topic(sample.topic)]
        color = samples["color"]
        camera_frame = profile.camera_frame or (str(color.last.header.frame_id) if color.last is not None else "")
        tf_error = None
        if camera_frame and tf.core.can_transform(profile.map_frame, camera_frame):
            try:
                tf.lookup_matrix(profile.map_frame, camera_frame, stamps_between(color.stamps_ns), TF_WAIT_S)
            except TransformError as err:
                tf_error = str(err)
        return judge_all(color, samples["depth"], samples["info"], tf.core.frames(), tf_error, window_s, profile)


def _complete(samples: dict[str, StreamSample], tf, profile: CameraProfile, start: float, timeout_s: float) -> bool:
    """Every stream arrived for RATE_WINDOW_S (or half the timeout) and TF reaches the camera."""
    if any(s.count == 0 for s in samples.values()):
        return False
    color = samples["color"]
    enough = min(RATE_WINDOW_S, timeout_s / 2)
    if min(s.arrivals_s[-1] - s.arrivals_s[0] for s in (color, samples["depth"])) < enough:
        return False
    camera_frame = profile.camera_frame or str(color.last.header.frame_id)
    return bool(camera_frame) and tf.core.can_transform(profile.map_frame, camera_frame)
