"""Camera profiles (launch/cameras) and `llm3d doctor --camera PROFILE` against a live driver.

The profiles must be parameter files the nodes accept: merged onto launch/llm3d.yaml they build
the mapper's and reasoner's configs, and rcl's own parser reads them. The doctor runs as a real
CLI process against `tests/ros/fake_camera.py`, a second process publishing a RealSense-like
stream and TF over DDS; a variant without map -> odom and with half-resolution depth must fail
with the two causes named.
"""

from __future__ import annotations

import select
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from llm3d_core.camera_profiles import (
    MAPPER_NODE,
    PROFILE_DIR,
    PROFILE_SECTION,
    REASONER_NODE,
    SHARED_KEYS,
    list_profiles,
    load_profile,
    merged_parameters,
    profile_parameter_file,
)
from llm3d_core.config import DEFAULT_CONFIG, config_from_dict, load_yaml, node_parameters

REPO = Path(__file__).resolve().parents[2]
PROFILES = ("azure_kinect", "oakd", "realsense_d4xx", "sim")


def test_the_shipped_profiles_are_listed_and_installed():
    assert tuple(list_profiles()) == PROFILES
    assert PROFILE_DIR == DEFAULT_CONFIG.parent / "cameras"
    assert 'glob.glob("launch/cameras/*.yaml")' in (REPO / "setup.py").read_text()  # installed with llm3d.yaml


@pytest.mark.parametrize("name", PROFILES)
def test_profile_merged_onto_llm3d_yaml_validates(name):
    from llm3d_ros.nodes.mapper_config import MapperNodeConfig
    from llm3d_ros.nodes.reasoner_config import ReasonerNodeConfig

    overlay = load_yaml(profile_parameter_file(name))
    # ROS parameter files: every section holds ros__parameters, or rcl refuses the file.
    assert all("ros__parameters" in section for section in overlay.values()), overlay.keys()
    assert set(overlay) == {PROFILE_SECTION, MAPPER_NODE, REASONER_NODE}
    merged = merged_parameters(name)
    mapper = config_from_dict(MapperNodeConfig, node_parameters(merged, MAPPER_NODE), MAPPER_NODE)
    reasoner = config_from_dict(ReasonerNodeConfig, node_parameters(merged, REASONER_NODE), REASONER_NODE)
    profile = load_profile(name)
    assert (mapper.color_topic, mapper.depth_topic, mapper.camera_info_topic, mapper.depth_scale) == (
        profile.color_topic, profile.depth_topic, profile.camera_info_topic, profile.depth_scale)
    for key in SHARED_KEYS:  # the reasoner's single-view input reads the mapper's camera
        assert getattr(reasoner.frame_input, key) == getattr(mapper, key), key
    assert not any(t.startswith("/") for t in (mapper.color_topic, mapper.depth_topic, mapper.camera_info_topic))
    # The overlay changes camera inputs only: everything else stays as in llm3d.yaml.
    base = node_parameters(load_yaml(DEFAULT_CONFIG), MAPPER_NODE)
    assert mapper.mapper == config_from_dict(MapperNodeConfig, base, MAPPER_NODE).mapper
    assert profile.driver and profile.launch and profile.optical_frame and profile.map_frame == "map"


def test_sim_profile_equals_the_defaults():
    base = load_yaml(DEFAULT_CONFIG)
    sim = load_yaml(profile_parameter_file("sim"))
    for node in (MAPPER_NODE, REASONER_NODE):
        overlay = node_parameters(sim, node)
        section = node_parameters(base, node)
        if node == REASONER_NODE:
            overlay, section = overlay["frame_input"], section["frame_input"]
        assert {k: section[k] for k in overlay} == overlay, node


def test_unknown_profile_and_overlay_paths(tmp_path):
    with pytest.raises(ValueError, match="unknown camera profile 'kinect1'; known profiles: azure_kinect, oakd"):
        profile_parameter_file("kinect1")
    with pytest.raises(ValueError, match="camera profile file not found"):
        profile_parameter_file(tmp_path / "missing.yaml")
    custom = tmp_path / "my_cam.yaml"
    custom.write_text("llm3d_mapper:\n  ros__parameters:\n    color_topic: cam/rgb\n    depth_transport: compressedDepth\n"
                      "llm3d_reasoner:\n  ros__parameters:\n    frame_input:\n      color_topic: cam/rgb\n")
    profile = load_profile(custom)
    assert profile_parameter_file(str(custom)) == custom.resolve()
    assert (profile.color_topic, profile.depth_topic, profile.depth_transport) == (
        "cam/rgb", "camera/depth/image_raw", "compressedDepth")  # the rest from llm3d.yaml
    mismatch = tmp_path / "mismatch.yaml"
    mismatch.write_text("llm3d_mapper:\n  ros__parameters:\n    color_topic: a\nllm3d_reasoner:\n  ros__parameters:\n"
                        "    frame_input:\n      color_topic: b\n")
    with pytest.raises(ValueError, match="read different cameras"):
        load_profile(mismatch)


@pytest.mark.ros
def test_profiles_load_as_ros_parameter_files():
    """rcl's own YAML parser reads each overlay (the metadata section included) into the node's parameters."""
    import rclpy

    for name in PROFILES:
        path = profile_parameter_file(name)
        context = rclpy.Context()
        rclpy.init(args=["--ros-args", "--params-file", str(path)], context=context)
        try:
            node = rclpy.create_node(MAPPER_NODE, context=context, automatically_declare_parameters_from_overrides=True)
            assert node.get_parameter("color_topic").value == load_profile(name).color_topic
            node.destroy_node()
        finally:
            rclpy.try_shutdown(context=context)


# ---------------------------------------------------------------------------- the doctor against a live stream
@contextmanager
def fake_camera(python_exe: str, log: Path, *flags: str):
    """tests/ros/fake_camera.py in its own process, until the block ends (SIGINT, then kill)."""
    with log.open("w") as err:
        proc = subprocess.Popen([python_exe, "-m", "tests.ros.fake_camera", "--lifetime", "60", *flags], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stdout], [], [], 0.2)[0] and proc.stdout.readline().strip() == "READY":
                break
        else:
            pytest.fail(f"fake camera did not start: {log.read_text()[-2000:]}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def doctor(python_exe: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python_exe, "-m", "llm3d_cli.main", "doctor", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


@pytest.mark.ros
def test_doctor_passes_on_a_realsense_stream(python_exe, tmp_path):
    with fake_camera(python_exe, tmp_path / "camera.log", "--profile", "realsense_d4xx"):
        # Ends as soon as 2 s of every stream and the TF chain are in; the timeout is only a bound.
        out = doctor(python_exe, "--camera", "realsense_d4xx", "--timeout", "10")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(lines) == 7 and all(line.startswith("PASS") for line in lines), out.stdout
    assert "rgb8 320x240" in out.stdout and "/camera/camera/aligned_depth_to_color/image_raw" in out.stdout
    assert "map -> odom -> base_link -> camera_link -> camera_color_optical_frame" in out.stdout


@pytest.mark.ros
def test_doctor_names_the_missing_link_and_unaligned_depth(python_exe, tmp_path):
    with fake_camera(python_exe, tmp_path / "camera.log", "--profile", "realsense_d4xx", "--no-map-odom",
                     "--half-depth"):
        out = doctor(python_exe, "--camera", "realsense_d4xx", "--timeout", "5")
    assert out.returncode == 1, out.stdout + out.stderr
    fails = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2, out.stdout
    assert any("no transform map -> odom" in line for line in fails), out.stdout
    assert any("depth 160x120 differs from colour 320x240" in line for line in fails), out.stdout
    assert "localisation" in out.stdout and "align_depth.enable:=true" in out.stdout  # the hints


def test_unknown_profile_is_one_line_exit_2(python_exe):
    out = doctor(python_exe, "--camera", "kinect1")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.splitlines() == [
        "llm3d doctor: error: argument --camera: unknown camera profile 'kinect1'; known profiles: azure_kinect, "
        "oakd, realsense_d4xx, sim (or the path of a YAML overlay)"]
    assert out.stdout == ""
