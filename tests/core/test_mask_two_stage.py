"""UniVLG's mask head with two-stage queries (mask_head.query_init pointer): queries seeded by the
object pointer's top proposals. Tiny random models on CPU; the mask stage runs end to end on a
tiny dataset after a real pointer stage."""

import json

import numpy as np
import pytest
import torch

from llm3d_core.model.univlg_losses import mask_to_box, target_masks_from_boxes
from tests.core.test_model import tiny_config, tiny_llm, tiny_model, tiny_scene, tiny_tokenizer, write_tiny_dataset

POINTER = dict(scene_encoder="objects", object_pointer=True, pointer={"d_model": 32, "num_layers": 1, "num_heads": 2})
HEAD = {"num_queries": 4, "num_layers": 2, "d_model": 32, "num_heads": 2, "query_init": "pointer"}


def two_stage_model(seed: int = 0, **head):
    from llm3d_core.model.configuration_llm3d import MaskHeadConfig, PointerConfig

    return tiny_model(seed, **{**POINTER, "pointer": PointerConfig(**POINTER["pointer"]), "grounding_head": "mask",
                               "mask_head": MaskHeadConfig(**{**HEAD, **head})})


def object_scene(seed: int = 0, num_points: int = 256):
    """A tiny scene with three objects; the first holds a good share of the points."""
    scene = tiny_scene(seed, num_points=num_points)
    scene.object_boxes[0] = torch.tensor([0.5, 0.5, 0.2, 2.0, 2.0, 1.5])
    return scene


def silence_dot_products(head) -> None:
    """Zeroes the learned mask and score terms, leaving only the pointer's prior."""
    with torch.no_grad():
        for layer in (head.query_mask[-1], head.score):
            layer.weight.zero_()
            layer.bias.zero_()


def test_queries_start_as_the_pointers_top_proposals_in_its_order():
    from llm3d_core.model.mask_head import OUTSIDE_LOGIT, PRIOR_GAIN

    model = two_stage_model()
    model.eval()
    head = model.mask_head
    silence_dot_products(head)
    scene = object_scene()
    batch = model.collate_scenes([scene])  # 3 objects in max_objects = 6 slots
    text, pad = model.question_states(["the chair", "the lamp"])
    prior = torch.tensor([[0.0, 2.0, -1.0], [1.0, -3.0, 0.5]])  # (B=2, 3 slots): the rest are padding
    with torch.no_grad():
        outputs = head(batch, text, pad, prior)
    assert len(outputs) == 3  # initial queries + 2 layers
    order = [[1, 0, 2], [0, 2, 1]]
    inside = target_masks_from_boxes(batch["points"][0], batch["object_boxes"][0, :3], model.config.mask_head.target_margin)
    for logits, scores in outputs:
        assert logits.shape == (2, 4, 256) and scores.shape == (2, 4)
        for b in range(2):
            prob = prior[b].softmax(-1)
            for q, slot in enumerate(order[b]):
                assert torch.allclose(scores[b, q].sigmoid(), prob[slot])  # the pointer's probability
                expected = torch.where(inside[slot], torch.tensor(PRIOR_GAIN), torch.tensor(-PRIOR_GAIN))
                assert torch.allclose(logits[b, q], expected)  # its proposal's points
            assert torch.all(scores[b, 3] == OUTSIDE_LOGIT) and torch.all(logits[b, 3] == OUTSIDE_LOGIT)  # no 4th object
    found = model.ground_mask(scene, "the chair", prior[0])  # the pointer's favourite, boxed by its points
    np.testing.assert_array_equal(found.mask, inside[1].numpy())
    np.testing.assert_allclose(found.box, mask_to_box(batch["points"][0], inside[1]))
    assert found.score == pytest.approx(float(prior[0].softmax(-1)[1]), rel=1e-5)


def test_two_stage_head_needs_the_prior_and_refuses_what_it_cannot_use():
    from llm3d_core.model.configuration_llm3d import Llm3dConfig, MaskHeadConfig

    model = two_stage_model()
    scene = object_scene()
    with pytest.raises(ValueError, match="object_logits"):
        model.ground_mask(scene, "the chair")
    empty = tiny_scene(3, num_points=256, objects=0)
    found = model.ground_mask(empty, "the chair")  # no map object: nothing to start from
    assert found.box is None and not found.mask.any()
    with pytest.raises(ValueError, match="train.stage mask"):
        model.mask_grounding_loss(model.collate_scenes([scene]), ["the chair"], [scene.object_boxes[:1]])
    with pytest.raises(ValueError, match="object slots"):
        model.mask_head(model.collate_scenes([scene]), *model.question_states(["a"]), torch.zeros(1, 9))
    with pytest.raises(ValueError, match="needs object_pointer true"):
        Llm3dConfig(grounding_head="mask", mask_head=MaskHeadConfig(query_init="pointer"))
    with pytest.raises(ValueError, match="mask_head.query_init"):
        MaskHeadConfig(query_init="anchors")


def test_two_stage_head_learns_to_overrule_a_wrong_pointer():
    """The prior favours object 1; the referred object is object 0: the decoder's own score and
    masks must learn to win against the fixed log-probability."""
    model = two_stage_model()
    head = model.mask_head
    scene = object_scene()
    batch = model.collate_scenes([scene])
    text, pad = model.question_states(["the big chair"])
    prior = torch.tensor([[0.0, 1.0, -1.0]])
    target = [scene.object_boxes[:1]]
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        got = head.losses(head(batch, text, pad, prior), batch, target)
        opt.zero_grad()
        got["total"].backward()
        opt.step()
        losses.append(float(got["total"].detach()))
    assert losses[-1] < 0.5 * losses[0], losses
    model.eval()
    found = model.ground_mask(scene, "the big chair", prior[0])
    inside0 = target_masks_from_boxes(batch["points"][0], scene.object_boxes[:1], 0.0)[0]
    assert found.mask[inside0.numpy()].mean() > 0.9  # object 0's points
    assert found.mask[~inside0.numpy()].mean() < 0.1


def test_two_stage_mask_stage_runs_on_the_pointers_logits_and_evaluates(tmp_path):
    """Base checkpoint -> pointer stage -> mask stage with query_init pointer (priors from the cached
    pointer states) -> llm3d eval's mask row, which passes each answer's pointer logits."""
    from safetensors.torch import load_file

    from llm3d_core.model.configuration_llm3d import PointerConfig
    from llm3d_core.model.data import dense_scene_store, scene_cache_path
    from llm3d_core.model.evaluate import evaluate
    from llm3d_core.model.modeling_llm3d import Llm3dModel
    from llm3d_core.training.train import TrainConfig, train

    root = write_tiny_dataset(tmp_path / "data")
    dense = 128
    cache = dense_scene_store(root, dense).cache_dir
    for i, sid in enumerate(["scene_a", "scene_b"]):  # the head's denser sample of the same maps (same objects)
        coarse, fine = tiny_scene(i, 64, 16), tiny_scene(i + 10, dense, 16)
        for name in ("object_boxes", "object_features", "object_text", "object_ids", "object_labels", "bounds"):
            setattr(fine, name, getattr(coarse, name))
        fine.save(scene_cache_path(root, sid, cache))
    for split in ("train", "val"):
        with (root / f"{split}.jsonl").open("a") as f:
            for n, (sid, seed, k) in enumerate([("scene_a", 0, 1), ("scene_b", 1, 2), ("scene_a", 0, 0)]):
                box = tiny_scene(seed, 64, 16).object_boxes[k].tolist()
                f.write(json.dumps({"id": f"{split}-ref-{n}", "scene_id": sid, "task": "ground", "boxes": [box],
                                    "question": "the chair by the wall", "answers": ["chair"]}) + "\n")
    train(TrainConfig(data=str(root), out=str(tmp_path / "base"), model=tiny_config(scene_encoder="objects"),
                      batch_size=2, max_steps=1, log_every=1), model=tiny_model(scene_encoder="objects"))
    ptr = tiny_model(1, **{**POINTER, "pointer": PointerConfig(**POINTER["pointer"])})
    train(TrainConfig(data=str(root), out=str(tmp_path / "ptr"), model=ptr.config, stage="pointer",
                      init_from=str(tmp_path / "base"), batch_size=2, pointer_epochs=2, pointer_batch=2), model=ptr)
    head = two_stage_model(2, num_points=dense)
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "mask"), model=head.config, stage="mask",
                      init_from=str(tmp_path / "ptr"), mask_epochs=3, mask_batch=4, mask_lr=3e-3)
    summary = train(cfg, model=head)
    state = json.loads((tmp_path / "mask" / "mask_state.json").read_text())
    assert len(state["history"]) == 3 and all(np.isfinite(h["loss"]) for h in state["history"])
    assert state["train_records"] == 5 and state["val"]["records"] == 5  # 2 ground records + 3 added, per split
    assert summary["mask"]["val"]["acc25"] == max(h["val_acc25"] for h in state["history"])
    before, after = load_file(tmp_path / "ptr" / "model.safetensors"), load_file(tmp_path / "mask" / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)  # the pointer and the rest unchanged
    assert "mask_head.prior_gain" in after and "mask_head.proposal_box.weight" in after

    tok = tiny_tokenizer()
    loaded = Llm3dModel.from_pretrained(tmp_path / "mask", llm=tiny_llm(len(tok)), tokenizer=tok)
    assert loaded.config.mask_head.query_init == "pointer" and loaded.mask_head.needs_prior
    metrics = evaluate(loaded, root, "val", meteor=False, tasks=["ground"])
    assert metrics["grounding"]["overall"]["n"] == metrics["grounding_mask"]["overall"]["n"] == 5
    # A two-stage mask can only start inside the pointer's proposals: every decoded mask is non-empty here.
    answer = loaded.session(tiny_scene(0, 64, 16)).ask("the chair by the wall", "ground")
    assert answer.object_logits is not None and answer.object_logits.shape == (3,)  # one per object token
    fine = dense_scene_store(root, dense).get("scene_a")
    found = loaded.ground_mask(fine, "the chair by the wall", answer.object_logits)
    assert found.box is not None and found.mask.shape == (dense,)


def test_object_points_give_every_object_its_share_of_the_sample():
    from types import SimpleNamespace

    from llm3d_core.model.scene import sample_indices, scene_from_arrays

    rng = np.random.default_rng(0)
    points = rng.uniform(0, 10, size=(20000, 3)).astype(np.float32)
    small = SimpleNamespace(box_min=np.array([1.0, 1.0, 1.0]), box_max=np.array([2.0, 2.0, 2.0]))  # ~20 points
    empty = SimpleNamespace(box_min=np.array([20.0, 20, 20]), box_max=np.array([21.0, 21, 21]))  # holds none
    inside = np.all((points >= small.box_min) & (points <= small.box_max), axis=1)
    uniform = sample_indices(points, 500, np.random.default_rng(1), [small, empty], 0)
    biased = sample_indices(points, 500, np.random.default_rng(1), [small, empty], 8)
    assert uniform.shape == biased.shape == (500,)
    assert inside[uniform].sum() <= 3 and inside[biased].sum() >= 8  # 500 of 20,000 uniform: ~0.3 expected
    again = sample_indices(points, 500, np.random.default_rng(1), [small, empty], 8)
    np.testing.assert_array_equal(biased, again)
    # more object points than the sample holds: the sample is all object points, no more than asked
    assert len(sample_indices(points, 5, np.random.default_rng(1), [small], 8)) == 5
    small.feature, small.text_feature, small.id, small.label = np.zeros(4, np.float32), None, 0, "cup"
    scene = scene_from_arrays(points, np.zeros((len(points), 4), np.float32), 500, 1, [small], text_dim=8,
                              object_points=8)
    held = ((scene.points >= torch.tensor(small.box_min, dtype=torch.float32))
            & (scene.points <= torch.tensor(small.box_max, dtype=torch.float32))).all(dim=1)
    assert int(held.sum()) >= 8


def test_point_size_grows_decoded_and_trained_boxes_by_half_a_voxel():
    from llm3d_core.model.mask_head import decode_grounding
    from llm3d_core.model.univlg_losses import LossWeights, scene_grounding_losses

    points = torch.tensor([[0.0, 0, 0], [1.0, 1, 1], [0.5, 0.5, 0.5], [3.0, 3, 3]])
    logits = torch.tensor([[9.0, 9.0, 9.0, -9.0]])
    found = decode_grounding(points, logits, torch.zeros(1), grow=0.025)
    np.testing.assert_allclose(found.box, [-0.025] * 3 + [1.025] * 3)
    target = torch.tensor([[-0.025] * 3 + [1.025] * 3])
    masks = torch.tensor([[True, True, True, False]])
    plain = scene_grounding_losses(logits, torch.zeros(1), points, masks, target, torch.ones(3) * 3, LossWeights())
    grown = scene_grounding_losses(logits, torch.zeros(1), points, masks, target, torch.ones(3) * 3, LossWeights(),
                                   grow=0.025)
    assert float(grown["box_l1"]) < 0.1 * float(plain["box_l1"])
