"""The feature-fusion mapper end to end with the real EfficientNet-Lite0 + MiniLM encoders."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from llm3d_core.encoders import EncoderConfig
from llm3d_core.geometry import FrameError, RGBDFrame
from llm3d_core.mapping.mapper import FeatureFusionMapper, MapFileError, MapperConfig
from llm3d_core.mapping.tsdf import TsdfConfig
from llm3d_core.mapping.voxel_features import VoxelMapConfig

H, W = 96, 128
K = np.array([[100.0, 0, W / 2], [0, 100.0, H / 2], [0, 0, 1]])


def small_config(**kw) -> MapperConfig:
    base = dict(device="cpu", sample_stride=4, objects_every=0, encoder=EncoderConfig(feature_dim=16, device="cpu"),
                voxels=VoxelMapConfig(voxel_size=0.05), tsdf=TsdfConfig(voxel_size=0.02, block_count=2000))
    base.update(kw)
    return MapperConfig(**base)


@pytest.fixture(scope="module")
def mapper_factory():
    return lambda **kw: FeatureFusionMapper(small_config(**kw))


def plane_frame(depth: float = 2.01, pose: np.ndarray | None = None, t: float = 0.0, rng_seed: int = 0) -> RGBDFrame:
    rgb = np.random.default_rng(rng_seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    return RGBDFrame(rgb=rgb, depth=np.full((H, W), depth, np.float32), K=K.copy(),
                     T_world_camera=np.eye(4) if pose is None else pose, timestamp=t)


def test_plane_at_known_depth_lands_where_it_should(mapper_factory):
    mapper = mapper_factory()
    stats = mapper.integrate(plane_frame(2.01))
    centers = mapper.voxels.centers().numpy()
    assert stats.points == (H // 4) * (W // 4)
    assert np.allclose(centers[:, 2], 2.025)  # floor(2.01 / 0.05) = 40 -> centre 2.025
    # Lateral extent = the frustum at 2.01 m: x in [-(W/2) * z / fx, (W/2) * z / fx].
    half_w = (W / 2) * 2.01 / 100.0
    assert centers[:, 0].min() > -half_w - 0.05 and centers[:, 0].max() < half_w + 0.05
    assert centers[:, 0].max() - centers[:, 0].min() > 2 * half_w - 0.2
    rendered = mapper.tsdf.render_depth(K, np.eye(4), W, H)
    assert np.median(np.abs(rendered[rendered > 0] - 2.01)) < 0.01
    assert (rendered > 0).mean() > 0.8


def test_pose_moves_the_map(mapper_factory):
    mapper = mapper_factory()
    pose = np.eye(4)
    pose[:3, 3] = [1.0, -2.0, 0.5]
    mapper.integrate(plane_frame(2.01, pose))
    centers = mapper.voxels.centers().numpy()
    assert np.allclose(centers[:, 2], 2.525)
    assert abs(np.median(centers[:, 0]) - 1.0) < 0.06 and abs(np.median(centers[:, 1]) + 2.0) < 0.06


def test_invalid_depth_is_ignored(mapper_factory):
    mapper = mapper_factory()
    frame = plane_frame(2.01)
    frame.depth[:, : W // 2] = np.nan
    frame.depth[: H // 2, W // 2:] = np.inf
    frame.depth[H // 2:, W // 2: 3 * W // 4] = 0.0
    frame.depth[H // 2:, 3 * W // 4:] = 50.0  # beyond depth_max
    stats = mapper.integrate(frame)
    assert stats.points == 0 and len(mapper.voxels) == 0
    # Read-outs of a map that fused only invalid depth are empty, not Open3D errors (the mapper node
    # builds its cloud and /map from them after every fused frame).
    points, colors = mapper.colored_points()
    assert points.shape == colors.shape == (0, 3)
    frame.depth[H // 2:, 3 * W // 4:] = 2.01
    assert mapper.integrate(frame).points == (H // 8) * (W // 16)


@pytest.mark.parametrize("break_frame, message", [
    (lambda f: setattr(f, "T_world_camera", np.full((4, 4), np.nan)), "non-finite"),
    (lambda f: f.T_world_camera.__setitem__((0, 0), 2.0), "orthonormal"),
    (lambda f: setattr(f, "depth", f.depth[:-1]), "sizes differ"),
    (lambda f: setattr(f, "depth", f.depth.astype(np.int32)), "dtype int32"),
    (lambda f: setattr(f, "rgb", f.rgb[..., :2]), r"\(H, W, 3\)"),
    (lambda f: setattr(f, "rgb", f.rgb.astype(np.float32)), "uint8"),
    (lambda f: setattr(f, "K", np.zeros((3, 3))), "fx, fy > 0"),
    (lambda f: setattr(f, "timestamp", float("nan")), "timestamp"),
])
def test_bad_frames_raise_and_leave_the_map_unchanged(mapper_factory, break_frame, message):
    mapper = mapper_factory()
    mapper.integrate(plane_frame(2.01))
    before = {k: v.clone() for k, v in mapper.voxels.state_dict().items()}
    bad = plane_frame(1.5)
    break_frame(bad)
    with pytest.raises(FrameError, match=message):
        mapper.integrate(bad)
    after = mapper.voxels.state_dict()
    assert mapper.frames == 1
    for name in before:
        assert np.array_equal(before[name].numpy(), after[name].numpy()), name


def test_uint16_depth_with_scale(mapper_factory):
    mapper = mapper_factory()
    frame = plane_frame()
    frame.depth = np.full((H, W), 2010, np.uint16)
    frame.depth[0, :] = 65535  # invalid marker
    frame.depth_scale = 1000.0
    mapper.integrate(frame)
    assert np.allclose(mapper.voxels.centers().numpy()[:, 2], 2.025)


def box_scene_frames():
    """Two boxes on a floor, seen from two poses, with instance ids (as the simulator gives)."""
    frames = []
    for t, shift in enumerate([0.0, 0.3]):
        depth = np.full((H, W), 3.0, np.float32)
        inst = np.zeros((H, W), np.int64)  # 0 = background wall
        depth[30:60, 10:40], inst[30:60, 10:40] = 2.0, 5
        depth[40:80, 80:120], inst[40:80, 80:120] = 2.5, 9
        pose = np.eye(4)
        pose[0, 3] = shift
        rgb = np.full((H, W, 3), 128, np.uint8)
        rgb[inst == 5] = [200, 30, 30]
        frames.append(RGBDFrame(rgb=rgb, depth=depth, K=K.copy(), T_world_camera=pose, timestamp=float(t), instance_ids=inst))
    return frames


def test_objects_from_instance_ids_keep_their_ids(mapper_factory):
    mapper = mapper_factory(objects=dataclasses.replace(small_config().objects, min_instance_voxels=3))
    mapper.integrate(box_scene_frames()[0])
    first = {o.instance_id: o for o in mapper.update_objects()}
    mapper.integrate(box_scene_frames()[1])
    second = {o.instance_id: o for o in mapper.update_objects()}
    assert set(second) == {5, 9}  # the wall (instance 0) is structure, not an object
    assert all(second[i].id == first[i].id == i for i in (5, 9))
    # Box 5 spans pixels u 10..40 at z = 2 m: x = (u - 64) * 2 / 100 -> [-1.08, -0.48] (+ shift of frame 2).
    box = second[5]
    assert box.box_min[2] == pytest.approx(2.0, abs=0.06) and box.box_max[2] == pytest.approx(2.05, abs=0.06)
    assert box.box_min[0] == pytest.approx(-1.08, abs=0.08) and box.box_max[0] == pytest.approx(-0.48 + 0.3, abs=0.08)
    assert box.label and sum(box.label_scores.values()) <= 1.0 + 1e-6


def cube_points(center, size, spacing=0.02):
    axis = np.arange(-size / 2, size / 2 + 1e-9, spacing)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    shell = (np.abs(grid) >= size / 2 - 1e-9).any(1)  # surface points only, like a fused map
    return grid[shell] + np.asarray(center)


def test_geometric_proposals_remove_structure_and_keep_ids():
    from llm3d_core.mapping.objects import ObjectConfig, ObjectTracker

    spacing = 0.02
    xs = np.arange(0, 4, spacing)
    floor = np.stack(np.meshgrid(xs, xs, [0.0], indexing="ij"), -1).reshape(-1, 3)
    wall = np.stack(np.meshgrid(xs, [4.0], np.arange(0, 2.5, spacing), indexing="ij"), -1).reshape(-1, 3)
    cubes = [cube_points((1, 1, 0.3), 0.4), cube_points((3, 2, 0.15), 0.2)]
    tracker = ObjectTracker(ObjectConfig(min_points=20))

    def update(parts):
        pts = np.concatenate(parts)
        feats = torch.zeros(len(pts), 8)
        return tracker.update(pts, feats, torch.ones(len(pts)), None, spacing)

    first = update([floor, wall, *cubes])
    assert len(first) == 2  # the floor and the wall are structure, not objects
    by_x = sorted(first, key=lambda o: o.centroid[0])
    assert np.allclose(by_x[0].box_min, [0.79, 0.79, 0.09], atol=0.02)
    assert np.allclose(by_x[0].box_max, [1.21, 1.21, 0.51], atol=0.02)
    ids = {round(o.centroid[0]): o.id for o in first}
    # The same scene seen again, slightly noisier, plus a new object: old ids stay, the new one gets a new id.
    rng = np.random.default_rng(0)
    again = update([floor, wall, *(c + rng.normal(0, 0.003, c.shape) for c in cubes), cube_points((2, 3, 0.2), 0.3)])
    assert len(again) == 3
    new_ids = {round(o.centroid[0]): o.id for o in again}
    assert new_ids[1] == ids[1] and new_ids[3] == ids[3]
    assert new_ids[2] not in ids.values()


def test_save_load_answers_identically_and_is_atomic(mapper_factory, tmp_path):
    mapper = mapper_factory()
    for f in box_scene_frames():
        mapper.integrate(f)
    mapper.update_objects()
    out = mapper.save(tmp_path / "map")
    names = sorted(p.name for p in out.iterdir())
    assert [n.split("-")[0] for n in names] == ["keyframes", "map.json", "objects", "tsdf", "voxels"]
    loaded = FeatureFusionMapper.load(out)
    assert loaded.frames == mapper.frames and len(loaded.voxels) == len(mapper.voxels)
    for text in ("red box", "wall"):
        a, b = mapper.query(text), loaded.query(text)
        assert [(h.object.id, round(h.score, 6)) for h in a] == [(h.object.id, round(h.score, 6)) for h in b]
    pts_a, rel_a = mapper.relevancy("red box")
    pts_b, rel_b = loaded.relevancy("red box")
    order_a, order_b = np.lexsort(pts_a.T), np.lexsort(pts_b.T)
    assert np.allclose(pts_a[order_a], pts_b[order_b]) and np.allclose(rel_a[order_a], rel_b[order_b], atol=1e-6)
    assert np.allclose(loaded.tsdf.render_depth(K, np.eye(4), W, H), mapper.tsdf.render_depth(K, np.eye(4), W, H))
    # Saving again replaces the files of the earlier save; nothing temporary is left behind. The files
    # of the previous save stay for readers in flight; those no manifest names any more are gone.
    def named() -> set[str]:
        files = json.loads((out / "map.json").read_text())["files"]
        return {n for v in files.values() for n in (v if isinstance(v, list) else [v])}

    first = named()
    mapper.save(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map"]
    second = named()
    assert {p.name for p in out.iterdir()} == first | second | {"map.json"}
    mapper.save(out)
    assert {p.name for p in out.iterdir()} == second | named() | {"map.json"}
    assert "keyframes" in names[0] and names[0] not in {p.name for p in out.iterdir()}


def test_a_save_reaches_the_disk_before_its_manifest_commits_it(mapper_factory, tmp_path, monkeypatch):
    """Power-cut safety (llm3d_core.durable): every file map.json names is fsynced before the rename
    that commits it, and the folder after it; a crash between leaves the previous save readable."""
    import os

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    mapper = mapper_factory()
    for f in box_scene_frames():
        mapper.integrate(f)
    out = tmp_path / "map"
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    mapper.save(out)
    commit = events.index(("replace", str(out / "map.json")))
    synced = {Path(p).name for kind, p in events[:commit] if kind == "fsync"}
    files = json.loads((out / "map.json").read_text())["files"]
    named = {n for v in files.values() for n in (v if isinstance(v, list) else [v])}
    assert named and named <= synced, named - synced
    assert any(Path(p).name.startswith(".map.json.") for kind, p in events[:commit] if kind == "fsync")
    assert ("fsync", str(out.resolve())) in events[commit:]  # the rename itself

    # A save that dies before its commit (here: the manifest's rename fails) leaves the last one.
    before = (out / "map.json").read_text()
    mapper.integrate(plane_frame(2.01, t=9.0))

    def failing_replace(src, dst) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="power cut"):
        mapper.save(out)
    assert (out / "map.json").read_text() == before
    assert FeatureFusionMapper.load(out).frames == mapper.frames - 1


def test_saves_write_only_the_voxel_chunks_that_changed(mapper_factory, tmp_path, monkeypatch):
    """#21: a live map's save rewrites the chunks its new frames touched, not the whole map."""
    from llm3d_core.mapping import voxel_features

    monkeypatch.setattr(voxel_features, "CHUNK_SLOTS", 64)  # the test map spans many chunks
    mapper = mapper_factory()
    for i in range(3):
        mapper.integrate(plane_frame(2.01, t=float(i)))
    out = mapper.save(tmp_path / "map")
    chunks = lambda: json.loads((out / "map.json").read_text())["files"]["voxel_chunks"]
    before = chunks()
    assert len(before) > 5 and all(name.startswith("voxels-") for name in before)
    pose = np.eye(4)
    pose[:3, 3] = [3.0, 0.0, 0.0]  # a new wall to the side: new voxels, new slots, new chunks only
    mapper.integrate(plane_frame(2.01, pose, t=3.0))
    mapper.save(out)
    after = chunks()
    assert after[: len(before)] == before  # the old chunks' files are named again, not rewritten
    assert len(after) > len(before)
    loaded = FeatureFusionMapper.load(out)
    state, reloaded = mapper.voxels.state_dict(), loaded.voxels.state_dict()
    assert all(torch.equal(state[k], reloaded[k]) for k in state)
    # Revisiting the first wall rewrites its chunks; a save after a load writes every chunk.
    loaded.integrate(plane_frame(2.01, t=4.0))
    loaded.save(out)
    assert not set(chunks()) & set(after)
    # A mapper saving into another mapper's folder never names that mapper's files.
    other = mapper_factory()
    other.integrate(plane_frame(1.5, t=0.0))
    other.save(out)
    assert len(FeatureFusionMapper.load(out).voxels) == len(other.voxels)


def test_corrupt_maps_give_clear_errors(mapper_factory, tmp_path):
    mapper = mapper_factory()
    mapper.integrate(plane_frame())
    out = mapper.save(tmp_path / "map")
    with pytest.raises(MapFileError, match="no saved map"):
        FeatureFusionMapper.load(tmp_path / "absent")
    def current(kind):  # the file of this kind that map.json names
        return out / json.loads((out / "map.json").read_text())["files"][kind]

    voxels_file = out / json.loads((out / "map.json").read_text())["files"]["voxel_chunks"][0]
    voxels_file.write_bytes(b"\x00garbage")
    with pytest.raises(MapFileError, match="voxels-.*safetensors is corrupt"):
        FeatureFusionMapper.load(out)
    voxels_file.unlink()
    with pytest.raises(MapFileError, match="is missing"):
        FeatureFusionMapper.load(out, attempts=2)
    mapper.save(out)
    current("tsdf").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(MapFileError, match="tsdf-.*corrupt"):
        FeatureFusionMapper.load(out)
    (out / "map.json").write_text("{not json")
    with pytest.raises(MapFileError, match="corrupt"):
        FeatureFusionMapper.load(out)
    mapper.save(out)
    meta = json.loads((out / "map.json").read_text())
    meta["feature_dim"] = 3
    (out / "map.json").write_text(json.dumps(meta))
    with pytest.raises(MapFileError, match="feature_dim"):
        FeatureFusionMapper.load(out)


@pytest.mark.slow
def test_real_7scenes_depth_agreement(seven_scenes):
    """Fuse every 8th real frame; frames not fused must agree with the map's rendered depth."""
    from llm3d_core.data.frames import SevenScenesFrames
    from llm3d_core.mapping.evaluation import depth_agreement

    frames = SevenScenesFrames(seven_scenes)
    mapper = FeatureFusionMapper(small_config(sample_stride=8, tsdf=TsdfConfig(voxel_size=0.02)))
    for i in range(0, len(frames), 8):
        mapper.integrate(frames[i])
    held_out = [frames[i] for i in range(4, len(frames), 32)]
    agreement = depth_agreement(mapper.tsdf, held_out)
    print(f"held-out median depth error {agreement.median_m * 100:.2f} cm over {agreement.frames} frames, "
          f"coverage {agreement.coverage:.2f}")
    assert agreement.median_m <= 0.03
    assert agreement.coverage > 0.5


def test_load_while_saving_reads_one_consistent_save(mapper_factory, tmp_path):
    import threading

    mapper = mapper_factory()
    for f in box_scene_frames():
        mapper.integrate(f)
    out = mapper.save(tmp_path / "map")
    stop = threading.Event()

    def keep_saving():
        while not stop.is_set():
            mapper.save(out)

    saver = threading.Thread(target=keep_saving)
    saver.start()
    try:
        for _ in range(8):
            loaded = FeatureFusionMapper.load(out)
            assert len(loaded.voxels) == len(mapper.voxels)
            assert len(loaded.objects) == len(mapper.objects)
    finally:
        stop.set()
        saver.join()
