"""`llm3d_reasoner` before any map: answers about the camera's current view (UniVLG's single-view
input), raw and compressed streams; the node as a separate process over real DDS (test_reasoner_node.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.core.test_reasoner import TRAINED_ANSWER
from tests.ros.test_reasoner_node import PARAMS, NodeProcess, Robot

pytestmark = pytest.mark.ros


VIEW_PARAMS = PARAMS + """\
    frame_input:
      max_age_s: 30.0
      encoder:
        feature_dim: 16
        text_aligned: false
"""


def _view_messages(frame, stamp_s: float, depth_size: tuple[int, int] | None = None):
    """A 7-Scenes frame at 160x120 as colour (rgb8), depth (16UC1 mm) and CameraInfo messages."""
    from PIL import Image as PILImage

    from llm3d_ros.conversions import numpy_to_image
    from llm3d_ros.conversions import camera_info_from_K

    w, h = 160, 120
    rgb = np.asarray(PILImage.fromarray(frame.rgb).resize((w, h), PILImage.BILINEAR))
    depth = np.asarray(PILImage.fromarray(frame.depth).resize(depth_size or (w, h), PILImage.NEAREST))
    K = frame.K.copy()
    K[0] *= w / frame.rgb.shape[1]
    K[1] *= h / frame.rgb.shape[0]
    sec, nsec = int(stamp_s), int((stamp_s % 1) * 1e9)
    from builtin_interfaces.msg import Time

    stamp = Time(sec=sec, nanosec=nsec)
    optical = "camera_color_optical_frame"
    return (numpy_to_image(rgb, "rgb8", optical, stamp), numpy_to_image(depth.astype(np.uint16), "16UC1", optical, stamp),
            camera_info_from_K(K, w, h, optical, stamp))


def test_reasoner_answers_about_the_camera_view_before_any_map(assets, tmp_path, seven_scenes):
    """UniVLG's single-view input over ROS: with no map, ask/ground/plan answer about the newest
    camera view (boxes in the camera frame); navigation waits for a map; bad images are refused
    and the node keeps serving; once a map loads, answers refer to it."""
    from action_msgs.msg import GoalStatus
    from sensor_msgs.msg import CameraInfo, Image

    from llm3d_core.data.frames import SevenScenesFrames
    from llm3d_ros.view_input import from_camera_view
    from llm3d_ros.conversions import object3d_box

    map_dir = tmp_path / "live_map"
    params = tmp_path / "params.yaml"
    params.write_text(VIEW_PARAMS.format(map_dir=map_dir, checkpoint=assets["ckpt"]))
    node = NodeProcess(params)
    robot = Robot(node)
    color_pub = robot.node.create_publisher(Image, "camera/color/image_raw", 2)
    depth_pub = robot.node.create_publisher(Image, "camera/depth/image_raw", 2)
    info_pub = robot.node.create_publisher(CameraInfo, "camera/color/camera_info", 2)

    def publish(msgs) -> None:
        for _ in range(5):  # best effort: a few times, spinning between
            for pub, msg in zip((color_pub, depth_pub, info_pub), msgs):
                pub.publish(msg)
            robot.spin_for(0.1)

    frame = SevenScenesFrames(seven_scenes)[0]
    try:
        robot.spin_until(lambda: robot.status.get("model", {}).get("state") == "ready", 90.0, "the model to load")
        reply = robot.ask_("What is in the room?")
        assert not reply.success and "no map yet" in reply.message and "no colour + depth pair" in reply.message

        publish(_view_messages(frame, 100.0))
        reply = robot.ask_("What is in the room?")
        assert reply.success and reply.answer and from_camera_view(reply.message), reply.message
        assert "camera_color_optical_frame" in reply.message
        robot.spin_until(lambda: robot.status["map"]["input"] == "camera view", 5.0, "the status to say so")

        ground = robot.call(robot.ground, robot.types["Ground"].Request(query="the table", max_results=0))
        assert ground.success and from_camera_view(ground.message), ground.message
        assert ground.header.frame_id == "camera_color_optical_frame"  # camera coordinates, no pose needed
        (obj,) = ground.objects  # a view has no map objects: the model's own box
        assert obj.id == -1 and np.isfinite(object3d_box(obj)).all()
        plan = robot.call(robot.plan, robot.types["Plan"].Request(instruction="make coffee"))
        assert plan.success and plan.steps, plan.message

        handle = robot.send_goal("the table", 1.0, [])
        res = robot.result(handle)
        assert res.status == GoalStatus.STATUS_ABORTED and "navigation needs a map" in res.result.message

        # A view whose depth does not match its colour image: refused by name, the node keeps serving.
        publish(_view_messages(frame, 101.0, depth_size=(80, 60)))
        bad = robot.ask_("What is in the room?")
        assert not bad.success and "could not be used" in bad.message and "sizes differ" in bad.message
        publish(_view_messages(frame, 102.0))
        assert robot.ask_("What is in the room?").success

        # The mapper's save arrives: answers refer to the map, the camera subscriptions end.
        shutil.copytree(assets["map"], map_dir)
        robot.spin_until(lambda: robot.status["map"]["version"], 30.0, "the reasoner to load the map")
        mapped = robot.ask_("What is in the room?")
        assert mapped.success and not from_camera_view(mapped.message) and mapped.answer == TRAINED_ANSWER
        robot.spin_until(lambda: "camera-view input off" in node.output, 10.0, "the camera subscriptions to end")
    finally:
        robot.close()
        rc = node.stop()
    assert rc == 0, node.output


def test_camera_view_input_takes_compressed_streams(assets, tmp_path, seven_scenes):
    """frame_input with image_transport's compressed colour (jpeg) and compressedDepth (png): the
    reasoner subscribes to <topic>/compressed and <topic>/compressedDepth and answers about the view
    (robots stream compressed over Wi-Fi; the decoder is the mapper's and the bag reader's)."""
    from sensor_msgs.msg import CameraInfo, CompressedImage

    from llm3d_core.data.frames import SevenScenesFrames
    from llm3d_core.messages import image_to_depth_m, image_to_rgb
    from llm3d_ros.conversions import depth_to_compressed_depth, rgb_to_compressed
    from llm3d_ros.view_input import from_camera_view

    params = tmp_path / "params.yaml"
    params.write_text(VIEW_PARAMS.format(map_dir=tmp_path / "live_map", checkpoint=assets["ckpt"])
                      + "      color_transport: compressed\n      depth_transport: compressedDepth\n")
    node = NodeProcess(params)
    robot = Robot(node)
    color_pub = robot.node.create_publisher(CompressedImage, "camera/color/image_raw/compressed", 2)
    depth_pub = robot.node.create_publisher(CompressedImage, "camera/depth/image_raw/compressedDepth", 2)
    info_pub = robot.node.create_publisher(CameraInfo, "camera/color/camera_info", 2)
    color, depth, info = _view_messages(SevenScenesFrames(seven_scenes)[0], 100.0)
    depth_mm = np.round(image_to_depth_m(depth) * 1000).astype(np.uint16)
    messages = (rgb_to_compressed(image_to_rgb(color), "jpeg", color.header.frame_id, color.header.stamp),
                depth_to_compressed_depth(depth_mm, depth.header.frame_id, depth.header.stamp), info)
    try:
        robot.spin_until(lambda: robot.status.get("model", {}).get("state") == "ready", 90.0, "the model to load")
        robot.spin_until(lambda: "image_raw/compressed + camera/depth/image_raw/compressedDepth" in node.output,
                         10.0, "the compressed subscriptions")
        for _ in range(5):
            for pub, msg in zip((color_pub, depth_pub, info_pub), messages):
                pub.publish(msg)
            robot.spin_for(0.1)
        reply = robot.ask_("What is in the room?")
        assert reply.success and reply.answer and from_camera_view(reply.message), reply.message
    finally:
        robot.close()
        rc = node.stop()
    assert rc == 0, node.output
