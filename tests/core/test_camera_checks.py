"""The doctor's camera judgements on messages built in memory (no ROS: fields read by name)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np

from llm3d_core.camera_checks import (
    StreamSample,
    judge_all,
    judge_depth,
    judge_frames,
    judge_pairing,
    judge_tf_chain,
    message_encoding,
)
from llm3d_core.camera_profiles import load_profile

PROFILE = load_profile("realsense_d4xx")
FRAME = "camera_color_optical_frame"
MOUNT = {FRAME: "camera_link", "camera_link": "base_link", "base_link": "odom"}


def image(array: np.ndarray, encoding: str, frame: str = FRAME):
    h, w = array.shape[:2]
    data = np.ascontiguousarray(array).tobytes()
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=0, step=len(data) // h, data=data,
                           header=SimpleNamespace(frame_id=frame, stamp=SimpleNamespace(sec=0, nanosec=0)))


def info(w: int, h: int, frame: str = FRAME):
    return SimpleNamespace(width=w, height=h, k=[300.0, 0, w / 2, 0, 300.0, h / 2, 0, 0, 1],
                           header=SimpleNamespace(frame_id=frame))


def sample(msg, topic: str = "/t", rate_hz: float = 30.0, n: int = 30, offset_ns: int = 0) -> StreamSample:
    times = [i / rate_hz for i in range(n)]
    return StreamSample(topic, "sensor_msgs/msg/Image", ["sensor_msgs/msg/Image"], times,
                        [int(t * 1e9) + offset_ns for t in times], msg)


def streams(depth_size=(64, 48), depth_mm=2000, depth_frame=FRAME):
    rgb = image(np.zeros((48, 64, 3), np.uint8), "rgb8")
    depth = image(np.full(depth_size[::-1], depth_mm, np.uint16), "16UC1", depth_frame)
    return sample(rgb), sample(depth), sample(info(64, 48))


def test_a_good_stream_passes_every_check():
    color, depth, cam = streams()
    checks = judge_all(color, depth, cam, {**MOUNT, "odom": "map"}, None, 2.0, PROFILE)
    assert [c.ok for c in checks] == [True] * 7, checks
    assert checks[-1].detail == "map -> odom -> base_link -> camera_link -> camera_color_optical_frame, also at image stamps"


def test_unaligned_depth_and_wrong_depth_scale_fail():
    color, depth, cam = streams(depth_size=(32, 24))
    checks = {c.name: c for c in judge_all(color, depth, cam, {**MOUNT, "odom": "map"}, None, 2.0, PROFILE)}
    assert not checks["depth registered to colour"].ok
    assert "depth 32x24 differs from colour 64x48" in checks["depth registered to colour"].detail
    assert "align_depth.enable:=true" in checks["depth registered to colour"].hint
    metres_as_mm = dataclasses.replace(PROFILE, depth_scale=1.0)  # 2000 units read as 2000 m
    bad = judge_depth(streams()[1], 2.0, metres_as_mm)
    assert not bad.ok and "median 2000.00 m" in bad.detail and "depth_scale" in bad.hint
    empty = judge_depth(streams(depth_mm=0)[1], 2.0, PROFILE)
    assert not empty.ok and "0% valid" in empty.detail


def test_encodings_rates_and_publishers():
    slow = sample(image(np.zeros((48, 64, 3), np.uint8), "rgb8"), rate_hz=2.0)
    checks = judge_all(slow, streams()[1], streams()[2], {}, None, 2.0, PROFILE)
    assert not checks[0].ok and "below 5 Hz" in checks[0].detail
    float_depth = sample(image(np.full((48, 64), 2.0, np.float32), "32FC1"))
    assert "the profile expects 16UC1" in judge_depth(float_depth, 2.0, PROFILE).detail
    nobody = StreamSample("/camera/x", "sensor_msgs/msg/Image")
    assert judge_depth(nobody, 2.0, PROFILE).detail == "no publisher on /camera/x"
    wrong_type = StreamSample("/camera/x", "sensor_msgs/msg/Image", ["sensor_msgs/msg/CompressedImage"])
    assert "carries sensor_msgs/msg/CompressedImage" in judge_depth(wrong_type, 2.0, PROFILE).detail
    assert message_encoding(SimpleNamespace(format="16UC1; compressedDepth png", data=b"")) == "16UC1"
    assert message_encoding(SimpleNamespace(format="jpeg", data=b"")) == ""


def test_frames_and_pairing():
    color, depth, cam = streams(depth_frame="camera_depth_optical_frame")
    bad = judge_frames(color, depth, cam, PROFILE)
    assert not bad.ok and "depth in camera_depth_optical_frame" in bad.detail
    color10 = sample(color.last, rate_hz=10.0)
    late = sample(streams()[1].last, rate_hz=10.0, offset_ns=int(0.05e9))  # halfway between colour frames
    paired = judge_pairing(color10, late, 0.02)
    assert not paired.ok and "0% of depth frames within 20 ms" in paired.detail


def test_tf_chain_names_the_missing_link():
    missing_localisation = judge_tf_chain(MOUNT, "map", FRAME)
    assert not missing_localisation.ok
    assert missing_localisation.detail.startswith("no transform map -> odom")
    assert "localisation" in missing_localisation.hint
    no_odometry = judge_tf_chain({FRAME: "camera_link", "camera_link": "base_link", "odom": "map"}, "map", FRAME)
    assert no_odometry.detail.startswith("no transform odom -> base_link") and "odometry" in no_odometry.hint
    unmounted = judge_tf_chain({FRAME: "camera_link", "base_link": "odom", "odom": "map"}, "map", FRAME)
    assert unmounted.detail.startswith("no transform base_link -> camera_link") and "URDF" in unmounted.hint
    unknown = judge_tf_chain({"base_link": "odom"}, "map", FRAME)
    assert not unknown.ok and f"no transform mentions {FRAME}" in unknown.detail
    assert "nothing received" in judge_tf_chain({}, "map", FRAME).detail
