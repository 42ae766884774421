"""The comparison checkpoints: a warm start that swaps the scene encoder, and the 2D baseline's
input (a saved map's keyframes encoded and pooled, no 3D) built, cached, trained on and refused
where a map model belongs."""

import json

import numpy as np
import pytest
import torch

from llm3d_core.model.modeling_llm3d import CheckpointError
from tests.core.test_model import tiny_config, tiny_model


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft calls a renamed transformers helper
def test_warm_start_swaps_the_scene_encoder_and_keeps_the_adapters(tmp_path):
    source = tiny_model(seed=0, scene_encoder="objects", lora=True)
    with torch.no_grad():  # trained-looking adapters and location rows
        for name, p in source.named_parameters():
            if p.requires_grad:
                p.add_(0.05)
    weights = source.save_pretrained(tmp_path / "objects") / "model.safetensors"
    target = tiny_model(seed=1, scene_encoder="points", lora=True)
    fresh_encoder = {n: p.clone() for n, p in target.scene_encoder.named_parameters()}
    with pytest.raises(CheckpointError, match="do not match"):
        target.load_trainable(weights)  # an objects encoder does not load into a points model
    target.load_trainable(weights, skip=("scene_encoder.",))
    shared = {n: p for n, p in source.trainable_state_dict().items() if not n.startswith("scene_encoder.")}
    assert any("lora_" in n for n in shared) and "loc_embed.weight" in shared
    loaded = target.trainable_state_dict()
    assert all(torch.equal(loaded[n], p) for n, p in shared.items())
    assert all(torch.equal(p, fresh_encoder[n]) for n, p in target.scene_encoder.named_parameters())


def test_frames2d_config_needs_location_tokens():
    with pytest.raises(ValueError, match="scene_input"):
        tiny_config(scene_input="video")
    with pytest.raises(ValueError, match="object_pointer false"):
        tiny_config(scene_encoder="objects", scene_input="frames2d", object_pointer=True)
    with pytest.raises(ValueError, match="frame_grid"):
        tiny_config(scene_input="frames2d", frame_grid=0)


@pytest.fixture(scope="module")
def sim_data(tmp_path_factory):
    """A data folder with one small saved sim map (keyframes included) and records about it."""
    from llm3d_core.encoders import EncoderConfig
    from llm3d_core.mapping.mapper import MapperConfig
    from sim.config import SimConfig
    from sim.datagen.maps import build_scene_map, map_sim_config
    from sim.scenes import generate_scene

    root = tmp_path_factory.mktemp("frames2d")
    # Text-aligned features, as the default mapper: its keyframes are kept for object crops.
    mapper_cfg = MapperConfig(device="cpu", sample_stride=2, use_tsdf=False, objects_every=0,
                              encoder=EncoderConfig(feature_dim=16, text_aligned=True))
    build_scene_map(generate_scene(11000), root / "maps" / "scene_a", frames_every=2, mapper_config=mapper_cfg,
                    sim_config=map_sim_config(SimConfig(), width=96, height=72, max_steps=40))
    recs = [{"task": "qa", "question": "What color is the sofa?", "answers": ["blue"]},
            {"task": "ground", "question": "the chair", "answers": ["chair"], "boxes": [[0.2, 0.3, 0.0, 0.8, 0.9, 0.7]]},
            {"task": "plan", "question": "make coffee", "steps": ["go to the counter", "pick up the mug"]}]
    for split in ("train", "val"):
        with (root / f"{split}.jsonl").open("w") as f:
            for n, r in enumerate(recs):
                f.write(json.dumps({"id": f"{split}-{n}", "scene_id": "scene_a", **r}) + "\n")
    return root


def test_frames2d_scene_comes_from_the_keyframes_without_3d(sim_data):
    from llm3d_core.mapping.map_files import read_map_keyframes
    from llm3d_core.model.data import SceneStore, frames2d_scene_store

    keyframes, config = read_map_keyframes(sim_data / "maps" / "scene_a")
    assert keyframes["rgb"].ndim == 4 and config["encoder"]["feature_dim"] == 16
    dim = 16 + 384  # visual + text-aligned channels
    store = frames2d_scene_store(sim_data, num_points=64, max_tokens=8, grid=2)
    scene = store.get("scene_a")
    cache = sim_data / "scene_cache_frames2d_g2" / "scene_a.safetensors"
    assert cache.is_file()
    assert scene.object_features.shape == (8, dim)  # 2 keyframes of 2x2 tokens fill the 8 slots
    assert torch.allclose(scene.object_text.norm(dim=1), torch.ones(8))  # the text-aligned part, unit length
    assert scene.object_labels == [""] * 8
    map_bounds = SceneStore(sim_data, 64).get("scene_a").bounds
    assert torch.equal(scene.bounds, map_bounds)  # the location frame is the map's
    centre = map_bounds.mean(dim=0)
    assert torch.allclose(scene.points, centre.expand(64, 3))  # no point carries a 3D position
    assert torch.allclose(scene.object_boxes, torch.cat([centre, centre]).expand(8, 6))
    # A second store reads the cache and gets the same scene.
    again = frames2d_scene_store(sim_data, num_points=64, max_tokens=8, grid=2).get("scene_a")
    assert torch.equal(again.object_features, scene.object_features)


def test_a_map_without_keyframes_is_refused_by_name(tmp_path, sim_data):
    import shutil

    from llm3d_core.model.data import frames2d_scene_store

    shutil.copytree(sim_data / "maps", tmp_path / "maps")
    shutil.copytree(sim_data / "scene_cache", tmp_path / "scene_cache")  # bounds come from here
    meta_file = tmp_path / "maps" / "scene_a" / "map.json"
    meta = json.loads(meta_file.read_text())
    del meta["files"]["keyframes"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="scene_a saved no keyframes"):
        frames2d_scene_store(tmp_path, num_points=64, max_tokens=8, grid=2).get("scene_a")


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_train_and_evaluate_on_frames2d_and_the_reasoner_refuses_it(tmp_path, sim_data):
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.model.evaluate import evaluate
    from llm3d_core.training.train import TrainConfig, train
    from llm3d_core.reasoner import Reasoner, ReasonerError

    overrides = dict(scene_encoder="objects", scene_input="frames2d", max_objects=8, feature_dim=400, text_dim=384)
    cfg = TrainConfig(data=str(sim_data), out=str(tmp_path / "ckpt"), model=tiny_config(**overrides),
                      batch_size=3, max_steps=2, save_every=2, log_every=1)
    summary = train(cfg, model=tiny_model(**overrides))
    assert len(summary["history"]) == 2 and np.isfinite(summary["history"][-1]["loss"])
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert saved["config"]["scene_input"] == "frames2d"
    model = tiny_model(**overrides)
    metrics = evaluate(model, sim_data, "val", meteor=False)
    assert metrics["records"] == 3 and metrics["grounding"]["overall"]["n"] == 1
    mapper = FeatureFusionMapper.load(sim_data / "maps" / "scene_a", device="cpu")
    with pytest.raises(ReasonerError, match="frames2d"):
        Reasoner(model).set_map(mapper, "v1")


def test_ask_reads_a_saved_maps_keyframes_for_a_frames2d_checkpoint(sim_data):
    import argparse

    from llm3d_cli.ask_cmd import _frames2d_scene
    from llm3d_core.model.data import frames2d_scene_store

    model = tiny_model(scene_encoder="objects", scene_input="frames2d", max_objects=8, feature_dim=400, text_dim=384)
    args = argparse.Namespace(map=sim_data / "maps" / "scene_a", frames=None)
    scene = _frames2d_scene(args, model)
    cached = frames2d_scene_store(sim_data, num_points=64, max_tokens=8, grid=2).get("scene_a")
    assert torch.equal(scene.object_features, cached.object_features)  # what it was trained on
    assert torch.allclose(scene.bounds, cached.bounds)
    with pytest.raises(ValueError, match="give --map"):
        _frames2d_scene(argparse.Namespace(map=None, frames=sim_data), model)
