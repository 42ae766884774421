"""Recorded ROS 2 bags: write -> read round trips, bag -> map equals frames -> map, damaged and
incomplete bags, and a training folder built from bags. No ROS install needed (rosbags only)."""

import json

import numpy as np
import pytest
from PIL import Image

from llm3d_core.bags.config import BagConfig, load_bag_config
from llm3d_core.bags.convert import frames_to_bag
from llm3d_core.bags.errors import BagCorruptError, BagTopicError, BagTransformError
from llm3d_core.bags.reader import BagFrameReader
from llm3d_core.bags.writer import BagWriter
from llm3d_core.config import ConfigError
from llm3d_core.data.frames import SevenScenesFrames
from llm3d_core.geometry import depth_to_metres

SMALL_MAPPER = """\
llm3d_mapper:
  ros__parameters:
    mapper:
      device: cpu
      sample_stride: 16
      objects_every: 0
      torch_threads: 1
      encoder:
        feature_dim: 16
        text_aligned: false
"""


def _read_all(path, config=None):
    reader = BagFrameReader(path, config)
    return list(reader.frames()), reader.report


@pytest.mark.parametrize("storage,color,depth", [("mcap", "raw", "16UC1"), ("sqlite3", "jpeg", "png"),
                                                 ("mcap", "png", "32FC1")])
def test_frames_round_trip(seven_scenes, tmp_path, storage, color, depth):
    cfg = BagConfig(storage=storage, color_format=color, depth_format=depth)
    stats = frames_to_bag(seven_scenes, tmp_path / "bag", cfg, every=3, limit=3)
    assert stats.frames == 3 and stats.messages["/tf"] == 3
    frames, report = _read_all(tmp_path / "bag", cfg)
    source = SevenScenesFrames(seven_scenes)
    assert len(frames) == report.frames == 3 and report.storage == storage
    for i, got in enumerate(frames):
        want = source[3 * i]
        # jpeg colour is the dataset's own JPEG passed through, decoded by the same decoder
        assert np.array_equal(got.rgb, want.rgb)
        tol = 1e-6 if depth == "32FC1" else 0.0
        assert np.abs(got.depth - depth_to_metres(want.depth, 1000.0)).max() <= tol
        assert np.array_equal(got.K, want.K)
        # 7-Scenes poses are rigid only to ~1e-4; a quaternion on /tf makes them exactly rigid
        assert np.abs(got.T_world_camera - want.T_world_camera).max() < 2e-4
        assert got.timestamp == pytest.approx(cfg.start_time_s + (want.timestamp - source[0].timestamp), abs=1e-6)


def test_record_sim_round_trip(tmp_path):
    from sim.datagen.maps import map_sim_config
    from sim.record_bag import record_sim_bag
    from sim.scenes.scene import load_scene

    recorded = []
    cfg = BagConfig(depth_format="32FC1")
    stats = record_sim_bag(42, tmp_path / "sim_bag", map_sim_config(width=96, height=72, max_steps=12), cfg,
                           on_frame=lambda frame, i: recorded.append(frame))
    assert stats.frames == len(recorded) >= 10
    assert stats.messages["/odom"] == stats.messages["/tf"] == len(recorded) and stats.messages["/tf_static"] == 1
    frames, report = _read_all(tmp_path / "sim_bag", cfg)
    assert len(frames) == len(recorded) and report.unpaired == 0
    for want, got in zip(recorded, frames):
        assert np.array_equal(got.rgb, want.rgb)
        assert np.array_equal(got.depth, want.depth.astype(np.float32))
        assert np.array_equal(got.instance_ids, want.instance_ids)
        assert np.array_equal(got.K, want.K)
        # map -> odom -> base_link -> optical frame composes to the explorer's pose
        assert np.abs(got.T_world_camera - want.T_world_camera).max() < 1e-9
    scene = load_scene(tmp_path / "sim_bag" / "scene.json")
    assert scene.seed == 42 and scene.instances


def test_tum_layout_converts(seven_scenes, tmp_path):
    """A TUM RGB-D folder (rgb.txt, depth.txt, groundtruth.txt, depth scale 5000) built from real frames."""
    from llm3d_core.messages import matrix_to_quaternion

    tum = tmp_path / "tum"
    (tum / "rgb").mkdir(parents=True)
    (tum / "depth").mkdir()
    source = SevenScenesFrames(seven_scenes)
    rgb_lines, depth_lines, gt_lines = [], [], []
    for i in range(3):
        frame, t = source[i], 1305031102.0 + i / 30
        Image.fromarray(frame.rgb).save(tum / "rgb" / f"{t:.6f}.png")
        Image.fromarray((frame.depth.astype(np.uint32) * 5).clip(0, 65535).astype(np.uint16)).save(tum / "depth" / f"{t:.6f}.png")
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t + 0.005:.6f} depth/{t:.6f}.png")
        T = frame.T_world_camera
        q = matrix_to_quaternion(T[:3, :3])
        gt_lines.append(f"{t:.6f} " + " ".join(f"{v:.9f}" for v in [*T[:3, 3], *q]))
    (tum / "rgb.txt").write_text("# colour images\n" + "\n".join(rgb_lines) + "\n")
    (tum / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    (tum / "groundtruth.txt").write_text("# timestamp tx ty tz qx qy qz qw\n" + "\n".join(gt_lines) + "\n")
    np.savetxt(tum / "camera-intrinsics.txt", source.K)
    frames_to_bag(tum, tmp_path / "bag")
    frames, _ = _read_all(tmp_path / "bag")
    assert len(frames) == 3
    for i, got in enumerate(frames):
        want = source[i]
        assert np.array_equal(got.rgb, want.rgb)
        assert np.abs(got.depth - depth_to_metres(want.depth, 1000.0)).max() < 1e-6  # 5 units/mm: exact in mm
        assert np.abs(got.T_world_camera - want.T_world_camera).max() < 2e-4


def _voxels(map_dir):
    from llm3d_core.mapping.mapper import FeatureFusionMapper

    mapper = FeatureFusionMapper.load(map_dir, device="cpu")
    slots = mapper.voxels.active_slots()
    keys = [tuple(k) for k in mapper.voxels.keys_of(slots).tolist()]
    return dict(zip(keys, mapper.voxels.features[slots].float().numpy())), mapper


def test_bag_maps_like_frames(seven_scenes, tmp_path):
    """`llm3d map --bag` on a bag of real frames vs `llm3d map --frames` on the same frames."""
    from llm3d_cli.main import main

    config = tmp_path / "small.yaml"
    config.write_text(SMALL_MAPPER)
    frames_to_bag(seven_scenes, tmp_path / "bag", limit=6)
    assert main(["map", "--frames", str(seven_scenes), "--limit", "6", "--out", str(tmp_path / "direct"),
                 "--config", str(config)]) == 0
    assert main(["map", "--bag", str(tmp_path / "bag"), "--out", str(tmp_path / "from_bag"), "--config", str(config)]) == 0
    direct, m1 = _voxels(tmp_path / "direct")
    via_bag, m2 = _voxels(tmp_path / "from_bag")
    assert m1.frames == m2.frames == 6
    common = direct.keys() & via_bag.keys()
    iou = len(common) / len(direct.keys() | via_bag.keys())
    a = np.stack([direct[k] for k in common])
    b = np.stack([via_bag[k] for k in common])
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    # Tolerance: poses differ by < 2e-4 (the dataset's non-rigid matrices vs /tf quaternions), which
    # moves a few samples across 5 cm voxel borders; everything else is bit-identical input.
    assert iou >= 0.99, iou
    assert np.median(cos) >= 0.999 and cos.mean() >= 0.99, (np.median(cos), cos.mean())
    summary = json.loads((tmp_path / "from_bag" / "summary.json").read_text())
    assert summary["bag"]["frames"] == 6


# ------------------------------------------------------------------------- damaged and incomplete bags
def _small_bag(tmp_path, seven_scenes, name="bag", n=4, **cfg):
    frames_to_bag(seven_scenes, tmp_path / name, BagConfig(**cfg), limit=n)
    return tmp_path / name


def test_truncated_bag_keeps_what_precedes_the_damage(seven_scenes, tmp_path, capsys):
    bag = _small_bag(tmp_path, seven_scenes, n=5)
    (mcap,) = bag.glob("*.mcap")
    mcap.write_bytes(mcap.read_bytes()[: int(mcap.stat().st_size * 0.6)])
    reader = BagFrameReader(bag)
    got = []
    with pytest.raises(BagCorruptError, match=f"truncated or damaged: {mcap.name}.*frame\\(s\\) were read before it") as err:
        for frame in reader.frames():
            got.append(frame)
    assert 1 <= len(got) < 5 and err.value.report.frames == len(got)
    # the CLI keeps them too: the partial map is saved, and the exit code says something was wrong
    from llm3d_cli.main import main

    config = tmp_path / "small.yaml"
    config.write_text(SMALL_MAPPER)
    assert main(["map", "--bag", str(bag), "--out", str(tmp_path / "map"), "--config", str(config)]) == 1
    assert "truncated or damaged" in capsys.readouterr().err
    assert (tmp_path / "map" / "map.json").is_file()


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"not a bag at all" * 10)
    with pytest.raises(BagCorruptError, match="bad.mcap"):
        BagFrameReader(bad)


def test_missing_topic_names_it(seven_scenes, tmp_path):
    bag = _small_bag(tmp_path, seven_scenes, n=2)
    cfg = BagConfig(depth_topic="/camera/aligned_depth_to_color/image_raw")
    with pytest.raises(BagTopicError, match=r"no messages on /camera/aligned_depth_to_color/image_raw \(depth_topic\).*"
                                            r"/camera/depth/image_raw \(sensor_msgs/msg/Image, 2\)"):
        BagFrameReader(bag, cfg)


def test_missing_tf(seven_scenes, tmp_path):
    # no TF topic at all: said up front
    with BagWriter(tmp_path / "no_tf") as writer:
        for i, frame in enumerate(SevenScenesFrames(seven_scenes)[j] for j in range(2)):
            writer.write_frame(frame, 1_700_000_000_000_000_000 + i * 33_000_000, pose_on_tf=False)
    with pytest.raises(BagTransformError, match="no messages on /tf or /tf_static"):
        BagFrameReader(tmp_path / "no_tf")
    # TF present, but never for the camera frame: the error names the frames it knows
    bag = _small_bag(tmp_path, seven_scenes, name="other_frame", n=3, optical_frame="camera_link")
    cfg = BagConfig(camera_frame="camera_color_optical_frame")
    with pytest.raises(BagTransformError, match="none of its 3 colour/depth pairs has a camera pose.*"
                                                "camera_color_optical_frame.*map -> camera_link"):
        list(BagFrameReader(bag, cfg).frames())


def test_some_frames_without_tf_are_skipped_and_counted(seven_scenes, tmp_path):
    source = SevenScenesFrames(seven_scenes)
    with BagWriter(tmp_path / "gap") as writer:
        for i in range(4):
            writer.write_frame(source[i], 1_700_000_000_000_000_000 + i * 1_000_000_000, pose_on_tf=i >= 2)
    frames, report = _read_all(tmp_path / "gap")
    assert len(frames) == 2 and report.skipped["no_transform"] == 2
    assert "map <- camera_color_optical_frame" in report.first_error["no_transform"]


def test_bag_config_validates_and_loads_from_yaml(tmp_path):
    with pytest.raises(ValueError, match="color_topic must be an absolute topic name.*'camera/color'"):
        BagConfig(color_topic="camera/color")
    with pytest.raises(ValueError, match="storage must be one of mcap, sqlite3, got 'rosbag'"):
        BagConfig(storage="rosbag")
    assert load_bag_config().color_topic == "/camera/color/image_raw"  # launch/llm3d.yaml has the section
    path = tmp_path / "p.yaml"
    path.write_text("llm3d_bag:\n  ros__parameters:\n    bag:\n      depth_topic: /d\n      tf_timout_s: 1.0\n")
    with pytest.raises(ConfigError, match="llm3d_bag.bag.tf_timout_s"):
        load_bag_config(path)


def test_training_folder_from_bags(tmp_path):
    """`llm3d train --bags` preparation: records from the annotations, a map per bag, maps reused."""
    import dataclasses

    from llm3d_core.mapping.mapper import FeatureFusionMapper, MapperConfig
    from llm3d_core.model.data import read_records
    from llm3d_core.model.scene import load_map_scene
    from sim.datagen.bags import build_bag_dataset
    from sim.datagen.maps import map_sim_config
    from sim.record_bag import record_sim_bag

    bags = tmp_path / "bags"
    record_sim_bag(7, bags / "run_a", map_sim_config(width=96, height=72, max_steps=8))
    base = MapperConfig()
    mapper_config = MapperConfig(device="cpu", sample_stride=8, objects_every=0, torch_threads=1,
                                 encoder=dataclasses.replace(base.encoder, feature_dim=16, text_aligned=False))
    index = build_bag_dataset(bags, mapper_config=mapper_config)
    entry = index["bags"]["run_a"]
    assert entry["records"] > 0 and entry["fused"] == entry["frames"] == 9 and not entry["cached"]
    records = list(read_records(bags / "train.jsonl"))
    assert len(records) == entry["records"] and {r["scene_id"] for r in records} == {"sim_000007"}
    scene = load_map_scene(bags / "maps" / "sim_000007", num_points=64)
    assert scene.points.shape[0] == 64
    assert FeatureFusionMapper.load(bags / "maps" / "sim_000007").frames == 9
    again = build_bag_dataset(bags, mapper_config=mapper_config)  # unchanged bag: its map is reused
    assert again["bags"]["run_a"]["cached"]
