"""Single-view data for 2D-3D co-training: views show the objects their records are about, boxes are
the visible pixels lifted in the camera frame, counts are of what the view shows, and the views feed
the model through the same scene stores and training stream as maps.

Facts are recomputed here from the saved arrays with this file's own code (numpy back-projection),
not with sim.datagen.views' functions.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from sim.datagen import validate_record
from sim.datagen.language import SYNONYMS
from sim.datagen.views import ViewConfig, ViewsRequest, generate_views
from sim.scenes import load_scene

VIEWS = 3


@pytest.fixture(scope="module")
def views_data(tmp_path_factory):
    """One train scene's records (llm3d data generate) and VIEWS views of it."""
    from llm3d_cli.main import main

    root = tmp_path_factory.mktemp("views")
    assert main(["data", "generate", "--split", "train", "--scenes", "1", "--out", str(root)]) == 0
    entry = generate_views(ViewsRequest(root, "train", config=ViewConfig(views_per_scene=VIEWS)))
    return root, entry


def _records(root):
    return [json.loads(line) for line in (root / "train_views.jsonl").read_text().splitlines()]


def _view(root, view_id):
    with np.load(root / "views" / view_id / "view.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads((root / "views" / view_id / "view.json").read_text())


def test_views_show_the_objects_their_records_are_about(views_data):
    root, entry = views_data
    recs = _records(root)
    assert entry["views"] == VIEWS and entry["records"] == len(recs) > 0
    assert set(entry["tasks"]) <= {"caption", "qa", "ground", "dialog"} and {"qa", "ground"} <= set(entry["tasks"])
    scene = load_scene(root / "scenes" / "sim_000000" / "scene.json")
    cfg = ViewConfig()
    for rec in recs:
        validate_record(rec)
        arrays, meta = _view(root, rec["scene_id"])
        assert meta["scene_id"] == "sim_000000" and meta["coordinates"] == "camera"
        depth, inst, K = arrays["depth"], arrays["instance"], arrays["K"]
        valid = (depth >= meta["depth_min"]) & (depth <= meta["depth_max"])
        visible = {int(k) for k in meta["visible"]}
        assert int(meta["target_id"]) in visible and len(visible) >= cfg.min_objects
        s = meta["sample_stride"]
        grid_valid, grid_inst = valid[s // 2::s, s // 2::s], inst[s // 2::s, s // 2::s]  # the lifting grid
        for i in visible:  # the recorded visibility is the instance image's, on the lifting grid
            assert int((grid_valid & (grid_inst == i)).sum()) == meta["visible"][str(i)] >= cfg.min_samples
        for oid, box in zip(rec["object_ids"], rec["boxes"]):
            assert oid in visible, f"{rec['id']} is about object {oid}, which the view does not show"
            v, u = np.nonzero(valid & (inst == oid))
            z = depth[v, u].astype(np.float64)
            pts = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)  # camera frame
            np.testing.assert_allclose(box, [*pts.min(0), *pts.max(0)], atol=2e-4)
            assert box[2] >= meta["depth_min"] - 1e-6  # in front of the camera: not a world box
    counts = [r for r in recs if r["qtype"] == "count" and " on " not in r["question"]]
    assert counts
    for rec in counts:  # "how many chairs are there?" counts the chairs the view shows
        _, meta = _view(root, rec["scene_id"])
        cats = {scene.instance(i).category for i in rec["object_ids"]}
        assert len(cats) == 1
        shown = {int(k) for k in meta["visible"] if scene.instance(int(k)).category in cats}
        assert set(rec["object_ids"]) == shown and rec["answers"][0] == str(len(shown))
    for rec in (r for r in recs if r["task"] == "ground"):
        cat = scene.instance(rec["object_ids"][0]).category
        assert rec["answers"][0] in SYNONYMS[cat]


def test_views_are_deterministic(views_data, tmp_path):
    root, _ = views_data
    other = tmp_path / "again"
    other.mkdir()
    for name in ("train.jsonl",):
        (other / name).write_text((root / name).read_text())
    (other / "scenes").symlink_to(root / "scenes")
    generate_views(ViewsRequest(other, "train", config=ViewConfig(views_per_scene=VIEWS)))
    assert (other / "train_views.jsonl").read_text() == (root / "train_views.jsonl").read_text()


def test_bad_view_requests_are_refused(tmp_path, views_data, capsys):
    from llm3d_cli.main import main

    with pytest.raises(ValueError, match="generate the split first"):
        ViewsRequest(tmp_path, "train")
    with pytest.raises(ValueError, match="must differ"):
        ViewsRequest(views_data[0], "train", name="train")
    with pytest.raises(ValueError, match="min_distance"):
        ViewConfig(min_distance=2.0, max_distance=1.0)
    assert main(["data", "views", "--data", str(tmp_path), "--split", "val"]) == 2
    assert re.search("^llm3d data views: error: .*not found", capsys.readouterr().err)


def test_views_feed_the_model_through_the_scene_stores(views_data, tmp_path):
    """A view's SceneInput is its lifted frame (camera frame, objects from its instance ids); the routing
    store builds and caches it; a torn view is refused by name."""
    import shutil

    from llm3d_core.model.configuration_llm3d import Llm3dConfig
    from llm3d_core.model.data import scene_store_for
    from llm3d_core.model.views import ViewError

    root = tmp_path / "data"
    shutil.copytree(views_data[0], root)
    store = scene_store_for(root, Llm3dConfig(num_points=256))
    view_id = "sim_000000_v00"
    _, meta = _view(root, view_id)
    assert store.available(view_id) and not store.available("sim_000000")  # no map was built for the scene
    scene = store.get(view_id)
    assert scene.points.shape == (256, 3) and scene.features.shape[1] == Llm3dConfig().feature_dim
    assert float(scene.points[:, 2].min()) >= meta["depth_min"] - 1e-4  # camera frame: z is the depth
    ids = {int(i) for i in scene.object_ids.tolist()}
    assert {int(k) for k in meta["visible"]} <= ids  # every object the records name is an object token
    assert ids <= {int(i) for i in np.unique(_view(root, view_id)[0]["instance"])}
    assert list((root / "scene_cache_views_256").glob(f"{view_id}.safetensors"))
    (root / "views" / "sim_000000_v01" / "view.npz").write_bytes(b"torn")
    with pytest.raises(ViewError, match="sim_000000_v01"):
        store.get("sim_000000_v01")


def test_training_stream_mixes_views_at_the_frame_fraction(views_data, tmp_path):
    import shutil

    from llm3d_core.model.configuration_llm3d import Llm3dConfig
    from llm3d_core.model.data import scene_cache_path
    from llm3d_core.training.train import TrainConfig, training_stream
    from tests.core.test_model import tiny_scene

    root = tmp_path / "data"
    shutil.copytree(views_data[0], root)
    model = Llm3dConfig(num_points=128)
    tiny_scene(0, 128, model.feature_dim).save(scene_cache_path(root, "sim_000000"))  # the scene's "map"
    cfg = TrainConfig(data=str(root), frame_data=["train_views"], frame_fraction=0.25)
    items = [x for _, x in zip(range(40), training_stream(cfg, model, seed=0))]
    from_views = [rec["scene_id"] != "sim_000000" for rec, _ in items]
    assert sum(from_views) == 10  # exactly a quarter (CoTrainingMixer keeps the ratio per block)
    for (rec, scene), is_view in zip(items, from_views):
        assert rec["scene_id"].startswith("sim_000000_v") == is_view
        assert scene.points.shape == (128, 3)
    plain = TrainConfig(data=str(root))
    assert all(rec["scene_id"] == "sim_000000" for rec, _ in (x for _, x in zip(range(20), training_stream(
        plain, model, seed=0))))
    with pytest.raises(ValueError, match="needs frame_data"):
        TrainConfig(frame_fraction=0.5)
    with pytest.raises(ValueError, match="scene_input 'map'"):
        training_stream(cfg, Llm3dConfig(num_points=128, scene_input="frames2d"), seed=0)
