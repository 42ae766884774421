"""The object pointer: grounding answers whose location tokens are copied from a map object's box.
Tiny random models on CPU; the pointer training stage runs end to end on a tiny dataset."""

import json

import numpy as np
import pytest
import torch

from llm3d_core.model.location_tokens import decode_box, encode_box
from llm3d_core.model.object_pointer import box_bins, pointer_targets
from llm3d_core.model.univlg_losses import box_iou_3d
from tests.core.test_model import np_box, tiny_config, tiny_llm, tiny_model, tiny_scene, tiny_tokenizer, write_tiny_dataset

POINTER = dict(scene_encoder="objects", object_pointer=True, pointer={"d_model": 32, "num_layers": 1, "num_heads": 2})


def pointer_model(seed: int = 0, **pointer):
    from llm3d_core.model.configuration_llm3d import PointerConfig

    return tiny_model(seed, **{**POINTER, "pointer": PointerConfig(**{**POINTER["pointer"], **pointer})})


def test_pointer_targets_pick_the_most_overlapping_object_or_none():
    boxes = torch.tensor([[[0.0, 0, 0, 1, 1, 1], [2.0, 0, 0, 3, 1, 1], [0.5, 0, 0, 1.5, 1, 1], [0.0, 0, 0, 1, 1, 1]]])
    mask = torch.tensor([[True, True, True, False]])  # slot 3 is padding, though it matches best
    target = torch.tensor([0.05, 0, 0, 1.0, 1, 1])
    assert pointer_targets(boxes, mask, [target], 0.25).tolist() == [0]
    assert pointer_targets(boxes, mask, [torch.tensor([5.0, 5, 5, 6, 6, 6])], 0.25).tolist() == [-1]
    assert pointer_targets(boxes, mask, [None], 0.25).tolist() == [-1]
    iou = box_iou_3d(boxes[0], target[None])
    assert iou[0] == pytest.approx(0.95) and iou[1] == 0.0


def test_config_refuses_a_pointer_without_object_tokens():
    from llm3d_core.model.configuration_llm3d import Llm3dConfig, PointerConfig

    with pytest.raises(ValueError, match="object_pointer needs scene_encoder: objects"):
        Llm3dConfig(object_pointer=True, scene_encoder="points")
    with pytest.raises(ValueError, match="match_iou"):
        PointerConfig(match_iou=0.0)


@pytest.mark.parametrize("words", [False, True])
def test_joint_training_trains_the_pointer_to_the_referred_object(words):
    from llm3d_core.training.train import TrainConfig, make_optimizer, train_step

    model = pointer_model(question_tokens=words)
    scene = tiny_scene(1)
    box = np_box(scene, 2)
    sample = model.make_sample("ground", "the chair", target="chair " + encode_box(box, scene.scene_bounds))
    sample.pointer_box = torch.tensor(box, dtype=torch.float32)
    batch = (model.collate_scenes([scene]), [sample])
    hidden, _, plen = model.hidden_states(*batch)
    rows, inp = model.pointer_inputs(hidden, batch[0], batch[1], plen)
    assert rows == [0] and inp["target"].tolist() == [2] and inp["objects"].shape == (1, plen, 64)
    assert ("words" in inp) == words
    opt, sched = make_optimizer(model, TrainConfig(data="x", out="y", lr=3e-3, warmup_steps=0, max_steps=30))
    before = [p.clone() for p in model.pointer.parameters()]
    losses = [train_step(model, [batch], opt, sched) for _ in range(10)]
    assert losses[-1] < losses[0] - 0.1, losses
    assert any(not torch.equal(a, b) for a, b in zip(before, model.pointer.parameters()))
    model.eval()
    with torch.no_grad():
        hidden, _, plen = model.hidden_states(*batch)
        _, inp = model.pointer_inputs(hidden, batch[0], batch[1], plen)
        logits = model.pointer(inp["query"], inp["objects"], inp)
    assert int(logits.argmax()) == 2


@pytest.mark.parametrize("words", [False, True])
def test_ground_answer_copies_an_object_box_and_decodes_with_the_strict_grammar(words):
    model = pointer_model(question_tokens=words)
    model.eval()
    scene = tiny_scene(0)
    answer = model.session(scene).ask("the chair", "ground")
    assert 0 <= answer.object_index < 3 and 0.0 < answer.object_prob <= 1.0
    bins = box_bins(scene.object_boxes, scene.bounds)[answer.object_index]  # (6,)
    assert answer.text.endswith("".join(f"<loc_{int(b)}>" for b in bins))
    _, box = decode_box(answer.text, scene.scene_bounds)
    # The copied box holds the object's box: each face within one location bin of it.
    np.testing.assert_allclose(box, np_box(scene, answer.object_index), atol=float(scene.scene_bounds.bin_size.max()) + 1e-6)
    empty = tiny_scene(0, objects=0)  # no object to point at: the tokens are generated as before
    answer = model.session(empty).ask("the chair", "ground")
    assert answer.object_index == -1 and answer.box is not None
    qa = model.session(scene).ask("What color is the sofa?", "qa")
    assert qa.object_index == -1 and "<loc_" not in qa.text


def test_pointer_stage_trains_only_the_pointer_and_reuses_its_states(tmp_path):
    from safetensors.torch import load_file

    from llm3d_core.model.modeling_llm3d import Llm3dModel
    from llm3d_core.training.train import TrainConfig, train

    root = write_tiny_dataset(tmp_path / "data")
    for split in ("train", "val"):  # referring records whose boxes are the scenes' objects
        with (root / f"{split}.jsonl").open("a") as f:
            for n, (sid, seed, k) in enumerate([("scene_a", 0, 1), ("scene_b", 1, 2)]):
                box = np_box(tiny_scene(seed, 64, 16), k).tolist()
                f.write(json.dumps({"id": f"{split}-ref-{n}", "scene_id": sid, "task": "ground", "boxes": [box],
                                    "question": "the chair by the wall", "answers": ["chair"]}) + "\n")
            f.write(json.dumps({"id": f"{split}-nav", "scene_id": "scene_a", "task": "navigate",
                                "question": "go to the chair", "answers": ["chair"], "goal": [1.0, 1.0, 0.0],
                                "boxes": [np_box(tiny_scene(0, 64, 16), 0).tolist()]}) + "\n")
    base_cfg = TrainConfig(data=str(root), out=str(tmp_path / "base"), model=tiny_config(scene_encoder="objects"),
                           batch_size=2, max_steps=1, log_every=1)
    train(base_cfg, model=tiny_model(scene_encoder="objects"))
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "ptr"), model=pointer_model().config, stage="pointer",
                      init_from=str(tmp_path / "base"), batch_size=2, pointer_epochs=3, pointer_batch=2)
    summary = train(cfg, model=pointer_model(seed=1, question_tokens=True))
    state = json.loads((tmp_path / "ptr" / "pointer_state.json").read_text())
    assert state["stage"] == "pointer" and len(state["history"]) == 3
    # four ground records + the navigate one with a box (re-cast as ground); three of them match an object
    assert state["train"]["records"] == 5 and state["val"]["records"] == 5
    assert summary["pointer"]["train"]["slot_acc"] >= 0.0
    base, new = load_file(tmp_path / "base" / "model.safetensors"), load_file(tmp_path / "ptr" / "model.safetensors")
    assert any(k.startswith("pointer.") for k in new)
    assert all(torch.equal(base[k], new[k]) for k in base)  # every other trained weight unchanged
    assert (root / "pointer_states" / "train.safetensors").is_file()
    mtime = (root / "pointer_states" / "train.safetensors").stat().st_mtime_ns
    train(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "ptr2")}), model=pointer_model(seed=2))
    assert (root / "pointer_states" / "train.safetensors").stat().st_mtime_ns == mtime  # cached states reused

    tok = tiny_tokenizer()
    model = Llm3dModel.from_pretrained(tmp_path / "ptr", llm=tiny_llm(len(tok)), tokenizer=tok)
    assert model.pointer is not None and model.config.object_pointer
    # llm3d eval grounds through the pointer too: every predicted box is one of the scene's objects.
    from llm3d_core.model.evaluate import evaluate

    evaluate(model, root, "val", tasks=["ground"], meteor=False, predictions_out=tmp_path / "pred.jsonl")
    preds = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    scenes = {"scene_a": tiny_scene(0, 64, 16), "scene_b": tiny_scene(1, 64, 16)}
    records = {json.loads(line)["id"]: json.loads(line) for line in (root / "val.jsonl").read_text().splitlines()}
    for pred in preds:
        scene = scenes[records[pred["id"]]["scene_id"]]
        tokens = pred["prediction"][pred["prediction"].index("<loc_"):]
        assert tokens in {"".join(f"<loc_{int(b)}>" for b in row) for row in box_bins(scene.object_boxes, scene.bounds)}
    with pytest.raises(ValueError, match="init_from"):
        train(TrainConfig(**{**cfg.__dict__, "init_from": ""}), model=pointer_model())
