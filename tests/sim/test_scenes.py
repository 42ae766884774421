"""Procedural scenes: determinism, catalog, placement without interpenetration, splits, I/O, errors."""

import json

import numpy as np
import pytest

from sim.config import SceneConfig
from sim.scenes import CATALOG, PALETTE, SPLITS, generate_scene, load_scene, seeds, split_of


def _overlap(a, b) -> np.ndarray:
    return np.minimum(a.box_max, b.box_max) - np.maximum(a.box_min, b.box_min)


def test_catalog_has_20_distinct_categories():
    assert len(CATALOG) >= 20
    for name, cat in CATALOG.items():
        built = cat.build(*cat.size_max, PALETTE[cat.colors[0]])
        assert built.parts, name
        assert all(c in PALETTE for c in cat.colors), name
    # distinguishable by shape: different part counts / silhouettes for the classic pairs
    chair, table = (CATALOG[n].build(*CATALOG[n].size_max, (0, 0, 0)) for n in ("chair", "table"))
    assert len(chair.parts) == 6 and len(table.parts) == 5  # 4 legs + seat + back, 4 legs + top


def test_same_seed_same_scene_and_different_seeds_differ():
    a, b, c = generate_scene(7), generate_scene(7), generate_scene(8)
    assert [i.to_dict() for i in a.instances] == [i.to_dict() for i in b.instances]
    assert np.array_equal(a.mesh().vertices, b.mesh().vertices)
    assert [i.to_dict() for i in a.instances] != [i.to_dict() for i in c.instances]


@pytest.mark.parametrize("seed", [0, 1, 2, 10001, 11999])
def test_scene_annotations_are_plausible(seed):
    scene = generate_scene(seed)
    cfg = SceneConfig()
    ids = [i.id for i in scene.instances]
    assert cfg.min_objects <= len(ids) <= cfg.max_objects
    assert ids == list(range(1, len(ids) + 1))
    by_id = {i.id: i for i in scene.instances}
    lo, hi = scene.bounds
    for inst in scene.instances:
        assert inst.category in CATALOG and inst.color in PALETTE
        assert np.all(inst.box_max > inst.box_min)
        assert np.all(inst.box_min >= lo - 1e-6) and np.all(inst.box_max <= hi + 1e-6)
        if inst.support_relation == "floor":
            assert inst.support_id == 0 and abs(inst.box_min[2]) < 1e-6
            assert CATALOG[inst.category].placement != "surface"
        else:
            sup = by_id[inst.support_id]
            assert inst.support_relation in ("on", "in")
            # rests inside the support's footprint, on a surface of it
            assert np.all(inst.box_min[:2] >= sup.box_min[:2] - 1e-6) and np.all(inst.box_max[:2] <= sup.box_max[:2] + 1e-6)
            if inst.support_relation == "on":
                assert abs(inst.box_min[2] - sup.box_max[2]) < 1e-5
            else:
                assert sup.box_min[2] < inst.box_min[2] and inst.box_max[2] < sup.box_max[2]
    for a in scene.instances:  # no interpenetration (a shelf contains what is "in" it)
        for b in scene.instances:
            contains = (b.support_id == a.id and b.support_relation == "in") or (a.support_id == b.id and a.support_relation == "in")
            if a.id < b.id and not contains:
                assert not np.all(_overlap(a, b) > 1e-6), (a.to_dict(), b.to_dict())


def test_splits_are_disjoint_and_bad_seeds_raise():
    sets = {k: set(r) for k, r in SPLITS.items()}
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
    assert split_of(5) == "train" and split_of(10000) == "val" and split_of(11999) == "test"
    assert seeds("val", 3) == [10000, 10001, 10002]
    assert all(split_of(s) == "test" for s in seeds("test", 50, start=100))
    for bad in (-1, 12000, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            generate_scene(bad)
    with pytest.raises(ValueError, match="split"):
        seeds("dev", 1)
    with pytest.raises(ValueError, match="cannot take"):
        seeds("val", 1001)


def test_bad_config_raises_with_field_name():
    with pytest.raises(ValueError, match="unknown category 'unicorn'"):
        SceneConfig(categories=["chair", "unicorn"])
    with pytest.raises(ValueError, match="min_objects"):
        SceneConfig(min_objects=30, max_objects=20)


def test_category_subset_is_respected():
    scene = generate_scene(4, SceneConfig(categories=["table", "cabinet", "mug", "book"], min_objects=5))
    assert {i.category for i in scene.instances} <= {"table", "cabinet", "mug", "book"}


def test_save_and_load_round_trip(tmp_path, scene):
    js, glb = scene.save(tmp_path)
    data = json.loads(js.read_text())
    assert data["format"] == "llm3d-sim-scene" and data["mesh"] == "scene.glb" and data["up_axis"] == "z"
    assert {"id", "category", "color", "box_min", "box_max", "support"} <= set(data["instances"][0])
    back = load_scene(js)
    assert [i.to_dict() for i in back.instances] == [i.to_dict() for i in scene.instances]
    m0, m1 = scene.mesh(), back.mesh()
    assert np.allclose(np.sort(m0.vertices, axis=0), np.sort(m1.vertices, axis=0), atol=1e-6)
    assert np.array_equal(np.sort(m0.face_instance), np.sort(m1.face_instance))
    # a bare .glb keeps semantics through node names; boxes match the annotations
    bare = load_scene(glb)
    assert len(bare.instances) == len(scene.instances)
    for a, b in zip(bare.instances, scene.instances):
        assert a.id == b.id and a.category == b.category
        assert np.allclose(a.box_min, b.box_min, atol=1e-4) and np.allclose(a.box_max, b.box_max, atol=1e-4)


def test_user_mesh_without_semantics_and_y_up(tmp_path):
    import trimesh

    path = tmp_path / "room.glb"
    trimesh.Scene([trimesh.creation.box(extents=(4, 0.1, 3))]).export(path)  # a y-up "floor" 4 x 3 m
    z_up = load_scene(path, up="y")
    assert z_up.instances == [] and set(np.unique(z_up.mesh().face_instance)) == {0}
    extent = z_up.bounds[1] - z_up.bounds[0]
    assert np.allclose(extent, [4, 3, 0.1], atol=1e-6)  # y-up thickness became z


def test_unreadable_or_missing_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_scene(tmp_path / "nope.glb")
    bad = tmp_path / "broken.glb"
    bad.write_bytes(b"not a gltf at all")
    with pytest.raises(ValueError, match="not a readable mesh"):
        load_scene(bad)
    other = tmp_path / "other.json"
    other.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="annotation file"):
        load_scene(other)
