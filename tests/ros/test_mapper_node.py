"""`llm3d_mapper` end to end: started by `llm3d bringup` as separate processes, fed real 7-Scenes
frames over DDS from this process, checked through its topics and services."""

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from llm3d_cli.main import main as llm3d_main
from llm3d_ros.camera_feed import CAMERA_FRAME, CameraFeed, frame_messages
from llm3d_ros.child_process import ChildProcess
from llm3d_ros.conversions import numpy_to_image, pointcloud2_to_xyzrgb
from llm3d_ros.diagnostics import OK, STALE, WARN

pytestmark = pytest.mark.ros

SMALL_MAPPER = """\
llm3d_mapper:
  ros__parameters:
    map_path: {map_path}
    cloud_period_s: 0.3
    status_period_s: 0.2
    tf_timeout_s: 0.3
    warn_period_s: 0.0
    autosave_period_s: 0.5
    still_fuse_period_s: 0.0   # every frame fused: these tests cycle a few real frames (the still-camera test sets it)
    mapper:
      device: cpu
      sample_stride: 16
      use_tsdf: false
      objects_every: 5
      encoder:
        feature_dim: 16
        text_aligned: false
"""


class Bringup(ChildProcess):
    """`llm3d bringup` as a child process; collects its (prefixed) output lines."""

    def __init__(self, *args: str) -> None:
        super().__init__([sys.executable, "-m", "llm3d_cli.main", "bringup", *args])

    def node_pids(self) -> list[int]:
        return [int(m) for m in re.findall(r"started \S+ \(pid (\d+)\)", self.output)]

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGINT like Ctrl-C; kills bringup and its nodes if they do not stop in time."""
        rc = super().stop(timeout_s)
        for pid in self.node_pids():  # never leak a node, whatever happened above
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        return rc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_bringup_sim_without_sim_node_is_a_clear_error(capsys, monkeypatch):
    """A node set without the sim bridge must not start a mapper that waits for a camera forever.

    (`llm3d bringup --sim` with the real node set is tested end to end in test_sim_bridge.py.)
    """
    from llm3d_ros import node_set

    monkeypatch.setattr(node_set, "NODES", tuple(s for s in node_set.NODES if s.name != "llm3d_sim_bridge"))
    assert llm3d_main(["bringup", "--sim"]) == 2
    assert "llm3d_sim_bridge" in capsys.readouterr().err


def test_bringup_fails_when_a_node_dies(tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text("llm3d_mapper:\n  ros__parameters:\n    queue_sise: 2\n")  # typo: the node must refuse it
    bringup = Bringup("--params-file", str(params))
    try:
        assert bringup.proc.wait(120) == 1
    finally:
        bringup.stop()
    assert "unknown config key(s) llm3d_mapper.queue_sise" in bringup.output
    assert "llm3d_mapper exited unexpectedly with code 2" in bringup.output


class Harness:
    """The test's own ROS node: publishes camera + TF, listens to the mapper's outputs."""

    def __init__(self, compressed: bool = False) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import OccupancyGrid, Path
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import PointCloud2
        from std_msgs.msg import String
        from std_srvs.srv import Trigger
        from visualization_msgs.msg import MarkerArray

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("mapper_test_harness", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.feed = CameraFeed(self.node, compressed=compressed)
        self.compressed = compressed
        self.clouds: list = []
        self.markers: list = []
        self.status: dict = {}
        self.node.create_subscription(PointCloud2, "map_cloud", self.clouds.append, latched)
        self.node.create_subscription(MarkerArray, "objects/markers", self.markers.append, latched)
        self.grids: list = []
        self.node.create_subscription(OccupancyGrid, "map", self.grids.append, latched)
        self.paths: list = []
        self.node.create_subscription(Path, "trajectory", self.paths.append, latched)
        self.max_queue = 0
        self.node.create_subscription(String, "/llm3d_mapper/status", self._on_status, latched)
        self.health: dict = {}  # DiagnosticStatus by name, the newest of each (/diagnostics, default QoS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      lambda m: self.health.update((s.name, s) for s in m.status), 10)
        self.save = self.node.create_client(Trigger, "/llm3d_mapper/save_map")
        self.reset = self.node.create_client(Trigger, "/llm3d_mapper/reset_map")
        self._Trigger = Trigger

    def mapper_health(self) -> tuple[int, str]:
        """(level, message) of the newest "llm3d_mapper: fusion" diagnostics; (-1, '') before any."""
        s = self.health.get("llm3d_mapper: fusion")
        return (-1, "") if s is None else (ord(s.level), s.message)

    def _on_status(self, msg) -> None:
        self.status = json.loads(msg.data)
        self.max_queue = max(self.max_queue, self.status["queue"])

    def spin_until(self, condition, timeout_s: float, what: str, bringup: Bringup) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if bringup.proc.poll() is not None:
                pytest.fail(f"bringup exited with {bringup.proc.returncode} while waiting for {what}:\n{bringup.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s} s waiting for {what}; status {self.status}\n{bringup.output}")
            self.executor.spin_once(timeout_sec=0.05)

    def spin_for(self, seconds: float) -> None:
        """Keeps the executor running while pacing publications (not a wait for a result)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def publish_frame(self, frame, stamp_ns: int, with_tf: bool = True, color_msg=None) -> None:
        self.feed.publish(frame_messages(frame, CAMERA_FRAME, color_msg, self.compressed), stamp_ns, with_tf)

    def call(self, client, bringup: Bringup):
        self.spin_until(client.service_is_ready, 60.0, f"service {client.srv_name}", bringup)
        future = client.call_async(self._Trigger.Request())
        self.spin_until(future.done, 60.0, f"a response from {client.srv_name}", bringup)
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def test_mapper_fuses_compressed_streams(seven_scenes, tmp_path):
    """#23: jpeg colour on <color_topic>/compressed and compressedDepth png on <depth_topic>/compressedDepth,
    as image_transport streams them over Wi-Fi, fused live like raw images."""
    from llm3d_core.data.frames import SevenScenesFrames

    frames = SevenScenesFrames(seven_scenes)
    params = tmp_path / "params.yaml"
    params.write_text(SMALL_MAPPER.format(map_path=tmp_path / "map") +
                      "    color_transport: compressed\n    depth_transport: compressedDepth\n")
    bringup = Bringup("--params-file", str(params), "--device", "cpu")
    harness = Harness(compressed=True)
    try:
        harness.spin_until(lambda: harness.feed.subscribed() and harness.status and harness.mapper_health()[0] >= 0,
                           120.0, "the mapper's compressed subscriptions and first diagnostics", bringup)
        # /diagnostics (#23): STALE before the first frame, OK once frames are fused.
        assert harness.mapper_health() == (STALE, "no camera frames received yet")
        deadline = time.monotonic() + 60.0
        while (harness.status["fused"] < 3 or harness.mapper_health()[0] != OK) and time.monotonic() < deadline:
            harness.publish_frame(frames[len(harness.grids) % 10], harness.now_ns())
            harness.spin_for(0.4)
        assert harness.status["fused"] >= 3 and harness.status["map"]["voxels"] > 0, harness.status
        level, message = harness.mapper_health()
        assert level == OK and message.startswith("fusing "), (level, message, harness.status)
        health = {kv.key: kv.value for kv in harness.health["llm3d_mapper: fusion"].values}
        assert int(health["fused"]) >= 3 and health["drop_ratio"]
        assert harness.status["errors"]["bad_image"] == 0
        assert "image_raw/compressed + camera/depth/image_raw/compressedDepth" in bringup.output
    finally:
        harness.close()
        rc = bringup.stop()
    assert rc == 0, bringup.output


def test_a_still_camera_is_fused_a_few_times_then_once_per_period(seven_scenes, tmp_path):
    """A parked robot streams the same view: still_max_frames of its frames are fused, the others
    skipped and counted (skipped.still) until the camera moves or still_fuse_period_s has passed."""
    from llm3d_core.data.frames import SevenScenesFrames

    frames = SevenScenesFrames(seven_scenes)
    first = frames[0]

    def moved(f) -> bool:  # well past still_motion_m (2 cm) or still_turn_deg (2 degrees) from the first frame
        rotation = first.T_world_camera[:3, :3].T @ f.T_world_camera[:3, :3]
        turn = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
        return np.linalg.norm(f.T_world_camera[:3, 3] - first.T_world_camera[:3, 3]) > 0.05 or turn > 5

    other = next(frames[i] for i in range(1, len(frames)) if moved(frames[i]))
    params = tmp_path / "params.yaml"
    params.write_text(SMALL_MAPPER.format(map_path=tmp_path / "map")
                      .replace("still_fuse_period_s: 0.0", "still_fuse_period_s: 4.0\n    still_max_frames: 2"))
    bringup = Bringup("--params-file", str(params), "--device", "cpu")
    harness = Harness()

    def publish_until(frame, condition, what: str) -> None:
        deadline = time.monotonic() + 30.0
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; status {harness.status}\n{bringup.output}")
            harness.publish_frame(frame, harness.now_ns())
            harness.spin_for(0.3)

    try:
        harness.spin_until(lambda: harness.feed.subscribed() and harness.status, 120.0,
                           "the mapper's subscriptions and first status", bringup)
        publish_until(first, lambda: harness.status["skipped"]["still"] >= 2, "still frames skipped")
        status = harness.status
        assert status["fused"] == 2 and status["errors"]["bad_image"] == 0, status  # still_max_frames
        publish_until(other, lambda: harness.status["fused"] >= 3, "the moved camera's frame fused")
        publish_until(other, lambda: harness.status["skipped"]["still"] >= status["skipped"]["still"] + 2,
                      "the moved camera's still frames skipped")
        assert harness.status["fused"] == 4, harness.status  # two at the new place
        t0 = time.monotonic()
        publish_until(other, lambda: harness.status["fused"] >= 5, "a still frame fused after the period")
        assert time.monotonic() - t0 > 2.0  # not before still_fuse_period_s (4 s after the last fusion)
    finally:
        harness.close()
        rc = bringup.stop()
    assert rc == 0, bringup.output


def test_a_map_that_is_not_resumed_is_kept_aside_not_overwritten(seven_scenes, tmp_path):
    """#21: a restart with resume off (or an unreadable map) used to delete the saved map at the first save."""
    from llm3d_core.data.frames import SevenScenesFrames
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.config import load_yaml
    from llm3d_ros.nodes.mapper_config import MapperNodeConfig
    from llm3d_core.config import config_from_dict

    frames = SevenScenesFrames(seven_scenes)
    map_path = tmp_path / "map"
    params = tmp_path / "params.yaml"
    params.write_text(SMALL_MAPPER.format(map_path=map_path) + "    resume: false\n")
    old = FeatureFusionMapper(config_from_dict(MapperNodeConfig, load_yaml(params)["llm3d_mapper"]["ros__parameters"])
                              .core_config())
    for i in range(3):
        old.integrate(frames[i])
    old.save(map_path)
    old_manifest = (map_path / "map.json").read_text()
    bringup = Bringup("--params-file", str(params), "--device", "cpu")
    harness = Harness()
    try:
        harness.spin_until(lambda: harness.feed.subscribed() and harness.status, 120.0,
                           "the mapper's subscriptions and first status", bringup)
        assert harness.status["map"]["frames"] == 0 and not harness.status["saves"]["resumed"]
        deadline = time.monotonic() + 60.0
        while not harness.status["saves"]["count"] and time.monotonic() < deadline:  # autosave_period_s 0.5
            harness.publish_frame(frames[10], harness.now_ns())
            harness.spin_for(0.5)
        previous = Path(harness.status["saves"]["previous"])
        assert previous.parent == tmp_path and previous.name.startswith("map.previous-"), harness.status
        assert (previous / "map.json").read_text() == old_manifest  # the old map, intact
        assert FeatureFusionMapper.load(previous).frames == 3
        assert FeatureFusionMapper.load(map_path).frames >= 1  # the new map where the reasoner looks
        assert f"is kept at {previous}" in bringup.output
    finally:
        harness.close()
        rc = bringup.stop()
    assert rc == 0, bringup.output


def test_a_clean_stop_saves_what_no_save_has_written(seven_scenes, tmp_path):
    """Ctrl-C (SIGINT through `llm3d bringup`) with autosave off and no ~/save_map call: the frames
    fused so far are saved on exit (`save_on_exit`), so the restarted mapper resumes them (the
    reasoner's save requests and the autosave leave at most their period unsaved; this saves it)."""
    from llm3d_core.data.frames import SevenScenesFrames
    from llm3d_core.mapping.mapper import FeatureFusionMapper

    frames = SevenScenesFrames(seven_scenes)
    map_path = tmp_path / "map"
    params = tmp_path / "params.yaml"
    # Nothing else saves: no autosave, and the reasoner bringup starts beside the mapper does not
    # pull the map through ~/save_map (it does every 5 s while the map has unsaved changes).
    params.write_text(SMALL_MAPPER.format(map_path=map_path).replace("autosave_period_s: 0.5", "autosave_period_s: 0.0") +
                      "llm3d_reasoner:\n  ros__parameters:\n    map_refresh_period_s: 0.0\n")
    bringup = Bringup("--params-file", str(params), "--device", "cpu")
    harness = Harness()
    try:
        harness.spin_until(lambda: harness.feed.subscribed() and harness.status, 120.0,
                           "the mapper's subscriptions and first status", bringup)
        deadline = time.monotonic() + 60.0
        i = 0
        while harness.status["map"]["frames"] < 3 and time.monotonic() < deadline:
            harness.publish_frame(frames[i % 10], harness.now_ns())
            harness.spin_for(0.4)
            i += 1
        harness.spin_until(lambda: harness.status["queue"] == 0, 30.0, "the worker to drain its queue", bringup)
        harness.spin_for(0.5)  # a status after the last fusion
        fused = harness.status["map"]["frames"]
        if not (fused >= 3 and harness.status["saves"]["count"] == 0 and harness.status["saves"]["unsaved"]):
            pytest.fail(f"{json.dumps(harness.status)}\n{bringup.output}")
        assert not map_path.exists()
    finally:
        harness.close()
        rc = bringup.stop()
    assert rc == 0, bringup.output
    assert re.search(rf"saved \d+ voxels from {fused} frames to {re.escape(str(map_path))}", bringup.output), \
        bringup.output
    assert FeatureFusionMapper.load(map_path).frames == fused


def test_mapper_fuses_real_frames_saves_and_survives_bad_input(seven_scenes, tmp_path):
    from llm3d_core.data.frames import SevenScenesFrames
    from llm3d_core.mapping.mapper import FeatureFusionMapper

    frames = SevenScenesFrames(seven_scenes)
    map_path = tmp_path / "map"
    params = tmp_path / "params.yaml"
    params.write_text(SMALL_MAPPER.format(map_path=map_path))
    bringup = Bringup("--params-file", str(params), "--device", "cpu")
    harness = Harness()
    try:
        # Discovery, plus the node's start-up (torch and the encoder), before any frame is sent.
        harness.spin_until(lambda: harness.feed.subscribed() and harness.status, 120.0,
                           "the mapper's subscriptions and first status", bringup)

        for i in range(0, 40, 2):  # 20 real frames at a camera's 30 Hz: faster than fusion on a CPU
            harness.publish_frame(frames[i], harness.now_ns())
            harness.spin_for(1 / 30)
        harness.spin_until(lambda: harness.clouds and harness.clouds[-1].width > 0, 120.0,
                           "a non-empty map_cloud", bringup)
        points, colors = pointcloud2_to_xyzrgb(harness.clouds[-1])
        assert len(points) == harness.clouds[-1].width and np.all(np.isfinite(points))
        assert harness.clouds[-1].header.frame_id == "map"
        assert 0.0 <= colors.min() and colors.max() <= 1.0
        harness.spin_until(lambda: harness.markers, 30.0, "object markers", bringup)
        # Nav2's map: nav_msgs/OccupancyGrid in the map frame, values -1 / 0 / 100 only, row-major cells.
        harness.spin_until(lambda: harness.grids, 30.0, "an occupancy grid on /map", bringup)
        grid = harness.grids[-1]
        values = np.frombuffer(bytes(grid.data), np.int8)
        assert grid.header.frame_id == "map" and grid.info.resolution == pytest.approx(0.05)
        assert len(values) == grid.info.width * grid.info.height > 1
        assert set(np.unique(values)) <= {-1, 0, 100} and (values != -1).any()
        assert harness.markers[-1].markers[0].action == harness.markers[-1].markers[0].DELETEALL
        # RViz's robot path: the camera positions the map recorded, in the map frame.
        harness.spin_until(lambda: harness.paths and harness.paths[-1].poses, 30.0, "a trajectory", bringup)
        path = harness.paths[-1]
        xyz = np.array([[p.pose.position.x, p.pose.position.y, p.pose.position.z] for p in path.poses])
        assert path.header.frame_id == "map" and np.isfinite(xyz).all()
        sent = np.array([frames[i].T_world_camera[:3, 3] for i in range(40)])  # the cameras along the sent frames
        assert np.linalg.norm(xyz[:, None] - sent[None], axis=2).min(axis=1).max() < 0.02, (xyz, sent)
        # The status is published on its own timer, so the cloud can arrive before a status that counts
        # its frame (seen under load: a status with fused 0 after a non-empty cloud).
        harness.spin_until(lambda: harness.status["fused"] >= 1 and harness.status["map"]["voxels"] > 0, 30.0,
                           "a status counting the fused frames", bringup)
        # Every paired frame was fused, dropped as stale, or counted as an error: nothing vanishes.
        harness.spin_until(lambda: harness.status["queue"] == 0 and harness.status["paired"] ==
                           harness.status["fused"] + harness.status["dropped"]["stale"] + sum(harness.status["errors"].values()),
                           60.0, "the worker to drain its queue", bringup)

        assert harness.max_queue <= 1  # queue_size 1: frames are dropped, never queued up
        # Autosave is on: wait until it has caught up, so loading below does not race a save in progress.
        harness.spin_until(lambda: harness.status["saves"]["count"] >= 1 and not harness.status["saves"]["unsaved"],
                           30.0, "an autosave of the whole map", bringup)
        assert FeatureFusionMapper.load(map_path).frames == harness.status["map"]["frames"]
        saved = harness.call(harness.save, bringup)
        assert saved.success, saved.message
        assert str(map_path) in saved.message
        loaded = FeatureFusionMapper.load(map_path)
        assert len(loaded.voxels) > 0 and loaded.frames >= 1

        # kill -9 of the mapper (#21): bringup restarts it, the new process resumes the saved map.
        mapper_pids = lambda: [int(m) for m in re.findall(r"started llm3d_mapper \(pid (\d+)\)", bringup.output)]
        os.kill(mapper_pids()[0], signal.SIGKILL)
        harness.spin_until(lambda: len(mapper_pids()) == 2, 30.0, "bringup to restart the mapper", bringup)
        assert "llm3d_mapper exited unexpectedly with code -9; restarting it" in bringup.output
        harness.spin_until(lambda: harness.status.get("saves", {}).get("resumed"), 120.0,
                           "the restarted mapper's status", bringup)
        assert harness.status["map"]["frames"] == loaded.frames and harness.status["map"]["voxels"] == len(loaded.voxels)
        assert FeatureFusionMapper.load(map_path).frames == loaded.frames  # nothing lost on disk either

        # Bad input: a wrong encoding, truncated data, and a frame whose pose is not in TF.
        errors_before = dict(harness.status["errors"])
        good = frames[20]

        def bad_inputs_counted() -> bool:
            errors = harness.status["errors"]
            return errors["bad_image"] >= errors_before["bad_image"] + 2 and \
                errors["no_transform"] >= errors_before["no_transform"] + 1

        deadline = time.monotonic() + 90.0
        while not bad_inputs_counted() and time.monotonic() < deadline and bringup.proc.poll() is None:
            stamp = harness.now_ns()
            wrong = numpy_to_image(good.rgb, "rgb8", CAMERA_FRAME)
            wrong.encoding = "yuv422"
            harness.publish_frame(good, stamp, color_msg=wrong)
            harness.spin_for(0.4)  # queue_size 1: give the worker time so the next one is not dropped as stale
            truncated = numpy_to_image(good.rgb, "rgb8", CAMERA_FRAME)
            truncated.data = bytes(truncated.data)[: len(truncated.data) // 2]
            harness.publish_frame(good, stamp + 1_000_000, color_msg=truncated)
            harness.spin_for(0.4)
            harness.publish_frame(good, harness.now_ns(), with_tf=False)
            harness.spin_for(0.6)
        harness.spin_until(bad_inputs_counted, 5.0, "the bad inputs to be counted", bringup)
        harness.spin_until(lambda: harness.mapper_health()[0] == WARN and "bad_image" in harness.mapper_health()[1],
                           5.0, "/diagnostics to warn about the bad input", bringup)

        assert bringup.proc.poll() is None, bringup.output
        assert "unsupported colour encoding 'yuv422'" in bringup.output
        reset = harness.call(harness.reset, bringup)
        assert reset.success, reset.message
        harness.spin_until(lambda: harness.clouds[-1].width == 0, 30.0, "an empty map_cloud after reset", bringup)
        again = harness.call(harness.save, bringup)
        assert not again.success and "no frame" in again.message  # nothing fused since the reset
    finally:
        harness.close()
        rc = bringup.stop()
    assert rc == 0, bringup.output
    # bringup reports nodes that did not exit with 0; the tail shows a crashed node's stacks (faulthandler)
    assert "exit codes" not in bringup.output, bringup.output[-6000:]
    assert bringup.node_pids() and not any(_alive(pid) for pid in bringup.node_pids())
