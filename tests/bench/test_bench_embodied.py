"""`llm3d bench embodied`: the 2D input path, the table's n/a and no-checkpoint cells, and a --quick run
whose table and JSON are checked for structure and ranges (speed is not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from llm3d_bench.embodied import EMBODIED_HEADER, NO_CHECKPOINT, EmbodiedConfig, System, embodied_rows, navigation_starts
from llm3d_core.model.frames2d import FrameTokens


def test_frame_tokens_carry_features_but_no_positions():
    tokens = FrameTokens(grid=2, text_dim=4)
    for k in range(5):
        fmap = torch.full((10, 6, 8), float(k))  # (C, h, w): one constant feature per frame
        tokens.add(np.full((24, 32, 3), 40 * k, np.uint8), fmap)
    bounds = np.array([[0.0, 0.0, 0.0], [4.0, 2.0, 3.0]])
    scene = tokens.scene_input(bounds, num_points=32, max_tokens=12)
    assert scene.object_features.shape == (12, 10)  # 3 frames of 2x2 tokens fit in 12 slots
    assert set(scene.object_features[:, 0].tolist()) == {0.0, 2.0, 4.0}  # first, middle, last frame
    centre = torch.tensor([2.0, 1.0, 1.5])
    assert torch.allclose(scene.points, centre.expand(32, 3))  # no 3D position reaches the encoder
    assert torch.allclose(scene.object_boxes, torch.cat([centre, centre]).expand(12, 6))
    assert torch.allclose(scene.bounds, torch.tensor(bounds, dtype=torch.float32))
    assert scene.object_labels == [""] * 12 and scene.feature_dim == 10
    with pytest.raises(ValueError, match="max_tokens"):
        tokens.scene_input(bounds, 32, max_tokens=3)
    with pytest.raises(ValueError, match="no frames"):
        FrameTokens().scene_input(bounds, 32, 64)


def test_config_validation_and_quick():
    with pytest.raises(ValueError, match="episodes"):
        EmbodiedConfig(episodes=0)
    with pytest.raises(ValueError, match="success_distance"):
        EmbodiedConfig(success_distance=float("nan"))
    quick = EmbodiedConfig.quick()
    assert (quick.episodes, quick.width, quick.height, quick.questions) == (1, 160, 120, 2)


def test_navigation_starts_avoid_solved_starts():
    path = np.array([[0.0, 0.0], [0.5, 0.0], [3.0, 0.0], [4.0, 0.0]])
    box = np.array([0.0, -0.2, 0.0, 0.4, 0.2, 1.0])
    starts = navigation_starts(path, (4.0, 0.0, 0.3), [box, box, box], 1.0, np.random.default_rng(0))
    assert starts[0] == (4.0, 0.0, 0.3)  # where exploration ended
    assert all(s[0] >= 3.0 for s in starts[1:])  # never within 1 m of the target's footprint


def test_rows_say_no_checkpoint_and_na():
    metrics = {"success": 1.0, "spl": 0.5, "distance_to_goal_m": 0.4, "qa_em@1": None, "qa_cider": None,
               "ground_acc@0.25": 1.0, "ground_acc@0.5": 0.0, "plan_step_acc": None, "mapper_fps": 3.0,
               "latency_p50_s": 0.01, "latency_p95_s": 0.02}
    result = {"systems": [
        {"name": "retrieval", "status": "ok", "checkpoint": "-", "metrics": metrics},
        {"name": "points", "status": NO_CHECKPOINT, "hint": "--ckpt-points DIR", "metrics": {}}]}
    rows = embodied_rows(result)
    assert all(len(r) == len(EMBODIED_HEADER) for r in rows)
    assert rows[0][4] == "n/a" and rows[0][1] == "1.00"
    assert rows[1][-1].startswith(NO_CHECKPOINT)
    assert not System("x", "frames2d").runnable and System("y", "retrieval").runnable
    with pytest.raises(ValueError, match="kind"):
        System("z", "lidar")


@pytest.fixture(scope="module")
def untrained_points_checkpoint(tmp_path_factory):
    """An untrained points-encoder checkpoint on the real SmolLM2 (the rows' plumbing, not their scores)."""
    import dataclasses

    from llm3d_core.training.train import load_train_config
    from llm3d_core.reasoner import load_model

    cfg = dataclasses.replace(load_train_config(None, {}).model, scene_encoder="points")
    folder = tmp_path_factory.mktemp("ckpt") / "points"
    load_model(None, cfg, "cpu").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def untrained_frames2d_checkpoint(tmp_path_factory):
    """An untrained 2D-baseline checkpoint (objects encoder on per-frame features)."""
    import dataclasses

    from llm3d_core.training.train import load_train_config
    from llm3d_core.reasoner import load_model

    cfg = dataclasses.replace(load_train_config(None, {}).model, scene_encoder="objects", scene_input="frames2d",
                              max_objects=48)
    folder = tmp_path_factory.mktemp("ckpt") / "frames2d"
    load_model(None, cfg, "cpu").save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_bench_embodied_quick(tmp_path, capsys):
    """Plain --quick: the objects row runs (shipped or untrained); the points and 2D rows run their
    shipped checkpoints, or say "no checkpoint" in a checkout without them."""
    from llm3d_cli.main import main
    from llm3d_core.assets import SHIPPED_FRAMES2D_CHECKPOINT, SHIPPED_POINTS_CHECKPOINT, shipped_checkpoint

    cache = tmp_path / "cache"
    assert main(["bench", "embodied", "--quick", "--device", "cpu", "--out", str(tmp_path), "--cache", str(cache)]) == 0
    printed = capsys.readouterr().out
    assert "| " + " | ".join(EMBODIED_HEADER) + " |" in printed
    result = json.loads((tmp_path / "embodied.json").read_text())
    assert (tmp_path / "embodied.png").stat().st_size > 5_000
    assert len(result["episodes"]) == 1 and result["episodes"][0]["scene"]
    assert result["episodes"][0]["fused"] > 0 and result["episodes"][0]["objects"] > 0
    kinds = _by_kind(result)
    # The same objects weights run more rows: generated location tokens (with an object pointer),
    # UniVLG's mask head (with one) and a single view per request (a trained checkpoint).
    names = [s["name"] for s in kinds["llm3d"]]
    pointer = any("generated location tokens" in n for n in names)
    mask = any("mask head" in n for n in names)
    frame = "frame" in kinds
    extra = pointer + mask + frame
    assert len(result["systems"]) == 4 + extra and len(result["rows"]) == 4 + extra
    objects, points = kinds["llm3d"][0], kinds["llm3d"][-1]
    assert frame == (objects["checkpoint"] != "untrained")
    for row in kinds["llm3d"][1:-1] + kinds.get("frame", []):
        assert row["status"] == "ok" and row["checkpoint"] == objects["checkpoint"]
        _check_ranges(row)
    if frame:  # one view: no map objects to match, no mapper
        single = kinds["frame"][0]
        assert single["metrics"]["mapper_fps"] is None
        assert all(single["counts"][k] == objects["counts"][k] for k in ("qa", "ground", "plan", "navigate"))
        assert all(g["object_id"] == -1 for g in single["grounding"])
    shipped_points = shipped_checkpoint(SHIPPED_POINTS_CHECKPOINT) is not None
    shipped_2d = shipped_checkpoint(SHIPPED_FRAMES2D_CHECKPOINT) is not None
    assert objects["status"] == "ok" and points["status"] == ("ok" if shipped_points else NO_CHECKPOINT)
    frames2d = kinds["frames2d"][0]
    assert frames2d["status"] == ("ok" if shipped_2d else NO_CHECKPOINT)
    for row in [points] * shipped_points + [frames2d] * shipped_2d:
        _check_ranges(row)
        assert row["counts"]["qa"] == 2
    retrieval = kinds["retrieval"][0]
    assert retrieval["metrics"]["qa_em@1"] is None and retrieval["metrics"]["plan_step_acc"] is None
    assert objects["counts"]["qa"] == 2 and objects["counts"]["navigate"] == 1 and objects["counts"]["absent"] == 2
    if _has_absence_head(objects["checkpoint"]):  # #22: the refusals carry the absence pointer's message
        assert all("nothing in the map matches" in a["message"] for a in objects["absent"] if a["refused"])
    for system in (objects, retrieval):
        _check_ranges(system)
    rows = {r[0]: r for r in result["rows"]}
    assert rows[retrieval["name"]][EMBODIED_HEADER.index("QA EM@1")] == "n/a"
    assert rows[frames2d["name"]][-1].startswith(NO_CHECKPOINT) != shipped_2d
    assert objects["intervals"]["qa_em@1"]["value"] == objects["metrics"]["qa_em@1"]
    assert "QA EM@1 by question type" in objects["breakdowns"] and "comparisons" in result

    # Again from the cached map, with the navigation episodes the first run wrote (habitat-lab's
    # ObjectNav file): the same map, requests, starts and answers, without exploring or fusing.
    again = tmp_path / "again"
    assert main(["bench", "embodied", "--quick", "--device", "cpu", "--out", str(again), "--cache", str(cache),
                 "--episodes-file", str(tmp_path / "episodes.json.gz")]) == 0
    second = json.loads((again / "embodied.json").read_text())
    (e1,), (e2,) = result["episodes"], second["episodes"]
    assert not e1["map_cached"] and e2["map_cached"] and e2["objects"] == e1["objects"] and e2["starts"] == e1["starts"]
    o2 = _by_kind(second)["llm3d"][0]
    assert [q["answer"] for q in o2["qa"]] == [q["answer"] for q in objects["qa"]]
    assert [n["instruction"] for n in o2["navigation"]] == [n["instruction"] for n in objects["navigation"]]
    assert [a["instruction"] for a in o2["absent"]] == [a["instruction"] for a in objects["absent"]]
    assert [g["iou"] for g in o2["grounding"]] == pytest.approx([g["iou"] for g in objects["grounding"]], abs=1e-6)


@pytest.mark.slow
def test_bench_embodied_points_and_2d_rows(tmp_path, untrained_points_checkpoint, untrained_frames2d_checkpoint):
    """With --ckpt-points and --ckpt-2d every row runs; the 2D row has no mapper (n/a) but answers."""
    from llm3d_cli.main import main

    ckpt, ckpt_2d = str(untrained_points_checkpoint), str(untrained_frames2d_checkpoint)
    assert main(["bench", "embodied", "--quick", "--device", "cpu", "--ckpt-points", ckpt, "--ckpt-2d", ckpt_2d,
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "embodied.json").read_text())
    assert all(s["status"] == "ok" for s in result["systems"])
    kinds = _by_kind(result)
    frames = kinds["frames2d"][0]
    assert frames["metrics"]["mapper_fps"] is None and frames["checkpoint"] == ckpt_2d
    assert all(g["object_id"] == -1 for g in frames["grounding"])  # the raw box: it sees no map objects
    for system in result["systems"]:
        _check_ranges(system)
    assert main(["bench", "embodied", "--quick", "--episodes", "0"]) == 2  # a bad count is a usage error
    # --ckpt is the objects row: a points checkpoint there is an error naming the mismatch; so is a
    # checkpoint trained on maps given as the 2D baseline
    assert main(["bench", "embodied", "--quick", "--ckpt", ckpt, "--out", str(tmp_path)]) == 2
    assert main(["bench", "embodied", "--quick", "--ckpt-2d", ckpt, "--out", str(tmp_path)]) == 2


def _by_kind(result: dict) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for s in result["systems"]:
        kinds.setdefault(s["kind"], []).append(s)
    return kinds


def _has_absence_head(checkpoint: str) -> bool:
    config = Path(checkpoint) / "config.json"
    return config.is_file() and json.loads(config.read_text())["config"]["pointer"].get("absence", False)


def _check_ranges(system: dict) -> None:
    m = system["metrics"]
    for key in ("success", "spl", "ground_acc@0.25", "ground_acc@0.5", "qa_em@1", "plan_step_acc"):
        assert m[key] is None or 0.0 <= m[key] <= 1.0, (system["name"], key, m[key])
    assert m["ground_acc@0.5"] <= m["ground_acc@0.25"] and m["spl"] <= m["success"]
    assert m["distance_to_goal_m"] >= 0
    assert m["mapper_fps"] is None or m["mapper_fps"] > 0
    assert 0 < m["latency_p50_s"] <= m["latency_p95_s"]
    assert m["qa_cider"] is None or 0.0 <= m["qa_cider"] <= 10.0  # CIDEr-D is bounded by 10
    absent = system["absent"]
    assert m["absent_goals"] == sum(not a["refused"] for a in absent) and 0.0 <= m["absent_refused"] <= 1.0
    assert all(("goal" in a) != a["refused"] for a in absent)
    if system["kind"] != "retrieval":
        assert m["qa_em@1"] is not None and m["qa_cider"] is not None


def test_single_frame_row_picks_the_view_that_shows_the_object():
    import torch

    from llm3d_core.geometry import RGBDFrame
    from llm3d_bench.single_frame import FrameViews, request_targets

    def frame(ids):
        inst = np.array(ids, dtype=np.int64).reshape(2, 2)
        return RGBDFrame(rgb=np.zeros((2, 2, 3), np.uint8), depth=np.ones((2, 2), np.float32),
                         K=np.eye(3), T_world_camera=np.eye(4), instance_ids=inst)

    views = FrameViews()
    with pytest.raises(ValueError, match="no frames"):
        views.best_view(3)
    for ids in ([0, 3, 0, 0], [3, 3, 3, 5], [5, 5, 0, 0]):
        views.add(frame(ids), torch.zeros(4, 1, 1))
    assert len(views) == 3 and views.features[0].dtype == torch.float16
    assert views.best_view(3) == 1 and views.best_view(5) == 2
    assert views.best_view(9) == 2 and views.best_view(None) == 2  # unseen or no object: what it sees now
    picked = {"qa": [{"question": "What color is the sofa? ", "object_ids": [5]}, {"question": "How many?"}],
              "ground": [{"question": "the lamp", "object_ids": [3, 4]}]}
    assert request_targets(picked) == {"What color is the sofa?": 5, "the lamp": 3}
