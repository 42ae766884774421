"""UniVLG's ideas in the core: mask-decoding grounding with its losses, single-frame scenes, frame
selection, 2D-3D co-training mixing, and old checkpoints loading unchanged. Tiny random models on CPU."""

import json

import numpy as np
import pytest
import torch

from llm3d_core.model.univlg_losses import (LossWeights, generalized_box_iou_3d, hungarian_match, mask_to_box,
                                            pairwise_mask_costs, scene_grounding_losses, soft_box,
                                            target_masks_from_boxes)
from tests.core.test_model import tiny_llm, tiny_model, tiny_scene, tiny_tokenizer

MASK = dict(grounding_head="mask", mask_head={"num_queries": 6, "num_layers": 2, "d_model": 32, "num_heads": 2})


def mask_model(seed: int = 0, **overrides):
    from llm3d_core.model.configuration_llm3d import MaskHeadConfig

    kw = {**MASK, **overrides}
    kw["mask_head"] = MaskHeadConfig(**{**MASK["mask_head"], **overrides.get("mask_head", {})})
    return tiny_model(seed, **kw)


def object_scene(seed: int = 0, num_points: int = 256):
    """A tiny scene whose first object box holds a good share of the points."""
    scene = tiny_scene(seed, num_points=num_points)
    scene.object_boxes[0] = torch.tensor([0.5, 0.5, 0.2, 2.0, 2.0, 1.5])
    return scene


def train_mask_steps(model, batch, questions, boxes, steps: int = 12) -> list[float]:
    """`steps` AdamW steps of the mask head alone on one batch; the loss of each."""
    opt = torch.optim.AdamW(model.mask_head.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = model.mask_grounding_loss(batch, questions, boxes)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


# ---------------------------------------------------------------------- masks, boxes, losses
def test_mask_to_box_and_empty_mask():
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 0.5], [3.0, -1.0, 2.0], [9.0, 9.0, 9.0]])
    box = mask_to_box(points, torch.tensor([True, True, True, False]))
    np.testing.assert_allclose(box, [0.0, -1.0, 0.0, 3.0, 2.0, 2.0])
    assert mask_to_box(points, torch.zeros(4, dtype=torch.bool)) is None
    with pytest.raises(ValueError, match="mask"):
        mask_to_box(points, torch.ones(3, dtype=torch.bool))
    masks = target_masks_from_boxes(points, torch.tensor([[-0.1, -0.1, -0.1, 1.0, 2.0, 1.0]]), margin=0.0)
    assert masks.tolist() == [[True, True, False, False]]


def test_soft_box_tends_to_the_hard_box_and_its_loss_suppresses_a_stray_point():
    g = torch.Generator().manual_seed(0)
    obj = torch.rand(60, 3, generator=g)  # the object fills the unit cube
    points = torch.cat([obj, torch.tensor([[4.0, 4.0, 4.0]])])  # (61, 3): one stray, distant point
    hard = torch.cat([torch.full((60,), 20.0), torch.tensor([-20.0])])[None]  # (1, 61)
    np.testing.assert_allclose(soft_box(points, hard)[0].numpy(), mask_to_box(points, hard[0] > 0), atol=1e-5)

    target = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]])
    logits = torch.full((1, 61), 2.0, requires_grad=True)  # every point, the stray one too, in the mask
    opt = torch.optim.SGD([logits], lr=2.0)
    errors = []
    for _ in range(15):
        box = soft_box(points, logits)  # (1, 6)
        loss = (box - target).abs().sum() + (1 - generalized_box_iou_3d(box, target)).sum()
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(logits.grad).all()
        if not errors:
            assert logits.grad[0, -1] > 0  # descent lowers the stray point's logit
        errors.append(float((box.detach() - target).abs().sum()))
        opt.step()
    assert errors[-1] < 0.5 * errors[0], errors
    assert float(logits.detach()[0, -1]) < 0.0  # the stray point left the mask


def test_giou_of_identical_and_disjoint_boxes():
    a = torch.tensor([[0.0, 0, 0, 1, 1, 1], [0.0, 0, 0, 1, 1, 1]])
    b = torch.tensor([[0.0, 0, 0, 1, 1, 1], [2.0, 0, 0, 3, 1, 1]])
    giou = generalized_box_iou_3d(a, b)
    assert giou[0] == pytest.approx(1.0) and giou[1] == pytest.approx(-1 / 3, abs=1e-6)


def test_hungarian_matching_picks_the_query_whose_mask_fits():
    points = torch.rand(100, 3, generator=torch.Generator().manual_seed(1))
    targets = target_masks_from_boxes(points, torch.tensor([[0.0, 0, 0, 0.5, 1, 1], [0.5, 0, 0, 1, 1, 1]]))  # (2, N)
    logits = torch.full((4, 100), -5.0)
    logits[2] = torch.where(targets[0], 5.0, -5.0)  # query 2 predicts target 0
    logits[0] = torch.where(targets[1], 5.0, -5.0)  # query 0 predicts target 1
    bce, dice = pairwise_mask_costs(logits, targets.float())
    q, t = hungarian_match(5 * bce + 5 * dice)
    assert dict(zip(t.tolist(), q.tolist())) == {0: 2, 1: 0}
    terms = scene_grounding_losses(logits, torch.zeros(4), points, targets, torch.tensor(
        [[0.0, 0, 0, 0.5, 1, 1], [0.5, 0, 0, 1, 1, 1]]), torch.ones(3), LossWeights())
    assert set(terms) == {"mask_bce", "dice", "score", "box_l1", "giou"} and terms["dice"] < 0.05


# ---------------------------------------------------------------------- the head in the model
def test_a_few_steps_of_the_mask_head_lower_its_loss():
    model = mask_model()
    scene = object_scene()
    batch = model.collate_scenes([scene, scene])
    boxes = [scene.object_boxes[:1], scene.object_boxes[:1]]
    losses = train_mask_steps(model, batch, ["the chair near the table", "a chair"], boxes)
    assert losses[-1] < 0.7 * losses[0], losses
    result = model.ground_mask(scene, "the chair near the table")
    assert result.box is not None and result.box.shape == (6,) and result.mask.shape == (256,)
    assert np.all(result.box[:3] <= result.box[3:]) and 0.0 <= result.score <= 1.0


def test_point_segments_take_the_smallest_holding_box_and_pooling_averages_them():
    from llm3d_core.model.mask_head import OUTSIDE_LOGIT, point_segments, pool_over_segments, segment_matrix

    points = torch.tensor([[[0.5, 0.5, 0.5], [0.2, 0.2, 0.2], [1.5, 1.5, 1.5], [5.0, 5.0, 5.0]]])  # (1, 4, 3)
    boxes = torch.tensor([[[0.0, 0.0, 0.0, 2.0, 2.0, 2.0],  # big box: holds points 0-2
                           [0.4, 0.4, 0.4, 0.6, 0.6, 0.6],  # small box inside it: point 0
                           [4.9, 4.9, 4.9, 5.1, 5.1, 5.1]]])  # padding slot (invalid): point 3 stays outside
    valid = torch.tensor([[True, True, False]])
    seg = point_segments(points, boxes, valid)
    assert seg.tolist() == [[1, 0, 0, -1]]
    member = segment_matrix(seg, 3, torch.float32)  # (1, 4, 3)
    logits = torch.tensor([[[1.0, 2.0, 4.0, 3.0]]], requires_grad=True)  # (B=1, Q=1, N=4)
    pooled = pool_over_segments(logits, member)
    assert torch.allclose(pooled, torch.tensor([[[1.0, 3.0, 3.0, OUTSIDE_LOGIT]]]))
    pooled[0, 0, 1].backward()  # a segment's mean spreads its gradient over its points only
    assert torch.allclose(logits.grad, torch.tensor([[[0.0, 0.5, 0.5, 0.0]]]))
    # one scene shared by B questions
    two = torch.stack([logits.detach()[0], -logits.detach()[0]])  # (2, 1, 4)
    assert torch.allclose(pool_over_segments(two, member)[1, 0, :3], torch.tensor([-1.0, -3.0, -3.0]))


def test_mask_head_pooled_over_proposals_decodes_whole_proposals_and_learns():
    model = mask_model(mask_head={"pool": "objects"})
    scene = object_scene()
    batch = model.collate_scenes([scene])
    boxes = [scene.object_boxes[:1]]
    losses = train_mask_steps(model, batch, ["the chair near the table"], boxes)
    assert losses[-1] < 0.7 * losses[0], losses
    from llm3d_core.model.mask_head import point_segments

    result = model.ground_mask(scene, "the chair near the table")
    seg = point_segments(batch["points"], batch["object_boxes"], batch["object_mask"])[0].numpy()  # (N,)
    assert result.box is not None and result.mask.any()
    chosen = set(seg[result.mask].tolist())
    assert -1 not in chosen  # no point outside every proposal
    for k in chosen:  # a proposal is in the mask whole or not at all
        assert result.mask[seg == k].all()


def test_questions_about_one_scene_share_its_points_and_match_per_question_batches():
    model = mask_model()
    model.eval()
    scene = object_scene()
    questions = ["the chair near the table", "a chair", "the lamp"]
    text, pad = model.question_states(questions)
    with torch.no_grad():
        shared = model.mask_head(model.collate_scenes([scene]), text, pad)
        repeated = model.mask_head(model.collate_scenes([scene] * 3), text, pad)
    for (l1, s1), (l2, s2) in zip(shared, repeated):
        torch.testing.assert_close(l1, l2, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(s1, s2, atol=1e-4, rtol=1e-4)
    boxes = [scene.object_boxes[:1]] * 3
    one = model.mask_grounding_loss(model.collate_scenes([scene]), questions, boxes)
    three = model.mask_grounding_loss(model.collate_scenes([scene] * 3), questions, boxes)
    torch.testing.assert_close(one, three, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="must match"):
        model.mask_grounding_loss(model.collate_scenes([scene] * 2), questions, boxes)


def test_mask_stage_trains_only_the_mask_head_on_denser_points(tmp_path):
    from safetensors.torch import load_file

    from llm3d_core.model.data import dense_scene_store, scene_cache_path
    from llm3d_core.model.modeling_llm3d import Llm3dModel
    from llm3d_core.training.train import TrainConfig, train
    from tests.core.test_model import tiny_config, write_tiny_dataset

    root = write_tiny_dataset(tmp_path / "data")
    dense = 256  # the head's own point density: caches in scene_cache_256/, beside the encoder's 64 points
    for split in ("train", "val"):
        with (root / f"{split}.jsonl").open("a") as f:
            for n, (sid, seed) in enumerate([("scene_a", 0), ("scene_b", 1)]):
                scene = object_scene(seed, dense)
                scene.features = scene.features[:, :16]
                scene.object_features = scene.object_features[:, :16]
                scene.save(scene_cache_path(root, sid, dense_scene_store(root, dense).cache_dir))
                f.write(json.dumps({"id": f"{split}-ref-{n}", "scene_id": sid, "task": "ground",
                                    "boxes": [scene.object_boxes[0].tolist()], "question": "the big chair",
                                    "answers": ["chair"]}) + "\n")
    train(TrainConfig(data=str(root), out=str(tmp_path / "base"), model=tiny_config(), batch_size=2, max_steps=1,
                      log_every=1), model=tiny_model())
    head = mask_model(seed=1, mask_head={"num_points": dense})
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "mask"), model=head.config, stage="mask",
                      init_from=str(tmp_path / "base"), mask_epochs=8, mask_batch=4, mask_lr=3e-3)
    summary = train(cfg, model=head)
    state = json.loads((tmp_path / "mask" / "mask_state.json").read_text())
    assert state["stage"] == "mask" and len(state["history"]) == 8 and state["num_points"] == dense
    assert state["train_records"] == 4 and state["val"]["records"] == 4  # the 2 ground records + 2 added, per split
    assert state["history"][-1]["loss"] < state["history"][0]["loss"], state["history"]
    assert summary["mask"]["val"]["acc25"] == max(h["val_acc25"] for h in state["history"])  # the best epoch kept
    base, new = load_file(tmp_path / "base" / "model.safetensors"), load_file(tmp_path / "mask" / "model.safetensors")
    assert any(k.startswith("mask_head.") for k in new)
    assert all(torch.equal(base[k], new[k]) for k in base)  # every other trained weight unchanged
    tok = tiny_tokenizer()
    loaded = Llm3dModel.from_pretrained(tmp_path / "mask", llm=tiny_llm(len(tok)), tokenizer=tok)
    assert loaded.mask_head is not None and loaded.config.mask_head.num_points == dense
    found = loaded.ground_mask(object_scene(0, dense), "the big chair")
    assert found.mask.shape == (dense,)
    with pytest.raises(ValueError, match="init_from"):
        train(TrainConfig(**{**cfg.__dict__, "init_from": ""}), model=mask_model())


def test_trainer_adds_the_mask_loss_for_ground_records_only_when_enabled():
    from llm3d_core.training.train import make_batch

    rec = {"task": "ground", "question": "the chair", "answers": ["chair"], "boxes": [[0.5, 0.5, 0.2, 2.0, 2.0, 1.5]]}
    qa = {"task": "qa", "question": "What color is the sofa?", "answers": ["blue"]}
    scene = object_scene()
    plain = tiny_model()
    _, samples = make_batch(plain, [(rec, scene)])
    assert samples[0].ground_boxes is None and plain.mask_head is None
    model = mask_model()
    batch, samples = make_batch(model, [(rec, scene), (qa, scene)])
    assert samples[0].ground_boxes.shape == (1, 6) and samples[1].ground_boxes is None
    loss = model(batch, samples)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.mask_head.parameters())


def test_old_checkpoint_without_the_new_fields_loads_and_answers_as_before(tmp_path):
    from llm3d_core.model.modeling_llm3d import CheckpointError, Llm3dModel

    model = tiny_model()
    model.eval()
    scene = tiny_scene(2)
    ckpt = model.save_pretrained(tmp_path / "old")
    meta = json.loads((ckpt / "config.json").read_text())
    del meta["config"]["grounding_head"], meta["config"]["mask_head"]  # what checkpoints of the current run hold
    (ckpt / "config.json").write_text(json.dumps(meta))
    def load(folder, **kw):
        tok = tiny_tokenizer()  # a fresh one each time: loading adds the <loc> tokens to it
        return Llm3dModel.from_pretrained(folder, llm=tiny_llm(len(tok)), tokenizer=tok, **kw)

    loaded = load(ckpt)
    assert loaded.mask_head is None and loaded.config.grounding_head == "location_tokens"
    assert set(loaded.trainable_state_dict()) == set(model.trainable_state_dict())
    a = model.session(scene).ask("the chair", "ground")
    b = loaded.session(scene).ask("the chair", "ground")
    assert a.text == b.text and np.array_equal(a.box, b.box)
    with pytest.raises(RuntimeError, match="no mask head"):
        loaded.ground_mask(scene, "the chair")
    # A model with the head round-trips it; asking an old config for it names the missing tensors.
    masked = mask_model()
    masked.eval()
    out = masked.save_pretrained(tmp_path / "mask")
    again = load(out)
    r1, r2 = masked.ground_mask(scene, "the chair"), again.ground_mask(scene, "the chair")
    assert np.array_equal(r1.mask, r2.mask) and r1.score == pytest.approx(r2.score)
    with pytest.raises(CheckpointError, match="missing"):
        load(ckpt, overrides={"grounding_head": "mask"})


def test_config_validation_names_the_field():
    from llm3d_core.config import ConfigError, config_from_dict
    from llm3d_core.model.configuration_llm3d import Llm3dConfig, MaskHeadConfig

    with pytest.raises(ValueError, match="grounding_head"):
        Llm3dConfig(grounding_head="boxes")
    with pytest.raises(ValueError, match="mask_head.text_source"):
        MaskHeadConfig(text_source="clip")
    with pytest.raises(ValueError, match="mask_head.pool"):
        MaskHeadConfig(pool="voxels")
    cfg = config_from_dict(Llm3dConfig, {"grounding_head": "mask", "mask_head.num_queries": 8}, "model")
    assert cfg.mask_head.num_queries == 8
    with pytest.raises(ConfigError, match="d_model"):
        config_from_dict(Llm3dConfig, {"mask_head": {"d_model": 30, "num_heads": 4}}, "model")


# ---------------------------------------------------------------------- single frames
@pytest.fixture(scope="module")
def encoder():
    from llm3d_core.encoders import EncoderConfig, build_image_encoder

    return build_image_encoder(EncoderConfig(feature_dim=16, device="cpu"))


def test_single_7scenes_frame_end_to_end(seven_scenes, encoder):
    from llm3d_core.data.frames import SevenScenesFrames
    from llm3d_core.model.single_frame import scene_from_frame, scene_from_rgbd

    frame = SevenScenesFrames(seven_scenes)[0]
    scene = scene_from_frame(frame, encoder, num_points=256)
    assert scene.points.shape == (256, 3) and scene.features.shape == (256, encoder.out_dim)
    assert float(scene.points[:, 2].min()) > 0.0  # camera coordinates: in front of the camera
    assert len(scene.object_ids) == 0  # real frames carry no instance ids
    model = mask_model(feature_dim=encoder.out_dim)
    model.eval()
    result = model.ground_mask(scene, "the kettle")
    assert result.box is not None and result.box.shape == (6,) and np.all(result.box[:3] <= result.box[3:])
    pts = scene.points.numpy()
    assert np.all(result.box[:3] >= pts.min(0) - 1e-5) and np.all(result.box[3:] <= pts.max(0) + 1e-5)
    assert model.session(scene).ask("the kettle", "ground").box.shape == (6,)  # location tokens run on it too
    depth_m = frame.depth.astype(np.float32) / 1000.0
    same = scene_from_rgbd(frame.rgb, depth_m, frame.K, encoder, num_points=256)
    assert torch.allclose(same.points, scene.points, atol=1e-4)


def test_simulator_style_frame_gives_objects_from_instance_ids(encoder):
    from llm3d_core.geometry import RGBDFrame
    from llm3d_core.model.single_frame import scene_from_frame

    h, w = 96, 128
    depth = np.full((h, w), 3.0, np.float32)
    inst = np.zeros((h, w), np.int32)  # 0: background (walls)
    depth[30:70, 40:90], inst[30:70, 40:90] = 1.5, 7
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[30:70, 40:90] = (200, 30, 30)
    pose = np.eye(4)
    pose[:3, 3] = [1.0, 2.0, 0.5]
    K = np.array([[100.0, 0, w / 2], [0, 100.0, h / 2], [0, 0, 1]])
    frame = RGBDFrame(rgb=rgb, depth=depth, K=K, T_world_camera=pose, instance_ids=inst)
    scene = scene_from_frame(frame, encoder, num_points=128, stride=4, label_objects=False)
    assert scene.object_ids.tolist() == [7]
    box = scene.object_boxes[0].numpy()
    # camera frame: x spans the image centre; boxes are padded by half the sample spacing (3 m * 4 px / 100 px)
    assert box[2] == pytest.approx(1.5 - 0.06, abs=1e-3) and box[0] < 0 < box[3]
    assert scene.object_colors[0, 0] > 0.7 and scene.object_text.shape == (1, encoder.text_dim)
    world = scene_from_frame(frame, encoder, num_points=128, stride=4, coordinates="world", label_objects=False)
    assert world.object_boxes[0, 2].item() == pytest.approx(2.0 - 0.06, abs=1e-3)  # z 1.5 in camera + 0.5


# ---------------------------------------------------------------------- frame selection and co-training
def test_frame_selection_picks_the_relevant_frame_and_covers_positions():
    from llm3d_core.model.frame_selection import FrameSelectionConfig, pooled_text_feature, select_frames

    g = torch.Generator().manual_seed(0)
    maps = torch.randn(40, 8 + 16, 3, 4, generator=g)  # (F, C, h, w): 8 visual + 16 text channels
    feats = torch.stack([pooled_text_feature(m, 16) for m in maps])  # (F, 16)
    query = feats[17] + 0.05 * torch.randn(16, generator=g)
    positions = np.zeros((40, 3))
    positions[:, 0] = np.linspace(0, 39, 40)  # cameras along a corridor
    picked = select_frames(query, feats, positions, FrameSelectionConfig(num_relevant=1, num_coverage=2))
    assert picked[0] == 17 and set(picked[1:]) == {0, 39}  # the two ends are farthest from frame 17
    default = select_frames(query, feats, positions)
    assert len(default) == 15 == len(set(default)) and default[0] == 17
    assert select_frames(query, feats[:4], positions[:4]) == [0, 1, 2, 3]  # under budget: everything
    with pytest.raises(ValueError, match="num_relevant"):
        FrameSelectionConfig(num_relevant=0, num_coverage=0)


def test_co_training_mixes_at_the_configured_ratio_deterministically():
    from llm3d_core.training.cotrain import CoTrainingConfig, CoTrainingMixer

    cfg = CoTrainingConfig(frame_fraction=0.3, block_size=20, seed=4)
    mixer = CoTrainingMixer([("frame", i) for i in range(1000)], [("scene", i) for i in range(1000)], cfg)
    items = [x for _, x in zip(range(200), mixer)]
    kinds = [k for k, _ in items]
    assert kinds.count("frame") == 60
    assert all(kinds[i:i + 20].count("frame") == 6 for i in range(0, 200, 20))
    assert [i for k, i in items if k == "frame"] == list(range(60))  # each source keeps its own order
    assert kinds == [k for k, _ in (x for _, x in zip(range(200), CoTrainingMixer(
        [("frame", i) for i in range(1000)], [("scene", i) for i in range(1000)], cfg)))]
    assert mixer.sources(200) != CoTrainingMixer([], [], CoTrainingConfig(0.3, 20, seed=5)).sources(200)
    odd = CoTrainingMixer([], [], CoTrainingConfig(frame_fraction=0.25, block_size=10)).sources(40)
    assert odd.count("frame") == 10  # fractions carry across blocks (2 or 3 per block)
    assert set(CoTrainingMixer([], [], CoTrainingConfig(frame_fraction=0.0)).sources(50)) == {"scene"}
    short = list(CoTrainingMixer([("frame", 0)], [("scene", i) for i in range(100)], CoTrainingConfig(0.5, 4, 0)))
    assert sum(k == "frame" for k, _ in short) == 1 and len(short) < 10  # stops when frames run out
    with pytest.raises(ValueError, match="frame_fraction"):
        CoTrainingConfig(frame_fraction=1.5)


def test_train_and_evaluate_with_the_mask_head_report_both_groundings(tmp_path):
    """Two real steps of train(cfg) with grounding_head mask, then evaluate(): both grounding rows."""
    from llm3d_core.model.evaluate import evaluate, format_table
    from llm3d_core.model.modeling_llm3d import Llm3dModel
    from llm3d_core.training.train import TrainConfig, train
    from tests.core.test_model import write_tiny_dataset

    root = write_tiny_dataset(tmp_path / "data")
    model = mask_model()
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "ckpt"), model=model.config, batch_size=4, max_steps=2,
                      save_every=2, log_every=1)
    summary = train(cfg, model=model)
    assert len(summary["history"]) == 2 and all(np.isfinite(h["loss"]) for h in summary["history"])
    tok = tiny_tokenizer()
    loaded = Llm3dModel.from_pretrained(tmp_path / "ckpt", llm=tiny_llm(len(tok)), tokenizer=tok)
    assert loaded.mask_head is not None
    metrics = evaluate(loaded, root, "val", meteor=False, tasks=["ground"])
    assert metrics["grounding"]["overall"]["n"] == metrics["grounding_mask"]["overall"]["n"] == 2
    assert "ground mask overall" in format_table(metrics)
