"""`llm3d graft`: a checkpoint's heads on another checkpoint's retrained trunk. Tiny random models on
CPU: the grafted checkpoint loads, answers with the trunk's LoRA and scene encoder and the heads'
pointer, carries the heads' calibration files; mismatched checkpoints are refused."""

import json

import pytest
import torch

from llm3d_core.model.checkpoint_io import CheckpointError, graft_checkpoint
from llm3d_core.model.modeling_llm3d import Llm3dModel
from tests.core.test_model import tiny_llm, tiny_model, tiny_tokenizer
from tests.core.test_object_pointer import pointer_model


def test_graft_takes_the_trunk_from_one_checkpoint_and_the_heads_from_the_other(tmp_path):
    heads = pointer_model(seed=0)
    heads_dir = heads.save_pretrained(tmp_path / "heads", extra={"stage": "absent"})
    (heads_dir / "pointer_state.json").write_text(json.dumps({"threshold": 0.5}))
    (heads_dir / "trainer_state.json").write_text(json.dumps({"step": 400}))
    # the retrained stage 1: same model without the pointer, other weights
    trunk = tiny_model(seed=1, scene_encoder="objects")
    with torch.no_grad():
        for p in trunk.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    trunk_dir = trunk.save_pretrained(tmp_path / "trunk")
    (trunk_dir / "trainer_state.json").write_text(json.dumps({"step": 300}))

    graft = graft_checkpoint(heads_dir, trunk_dir, tmp_path / "graft")
    trunk_state, heads_state = trunk.trainable_state_dict(), heads.trainable_state_dict()
    assert graft["taken"] == len(trunk_state) and graft["kept"] == len(heads_state) - len(trunk_state)

    tok = tiny_tokenizer()
    loaded = Llm3dModel.from_pretrained(tmp_path / "graft", llm=tiny_llm(len(tok), seed=0), tokenizer=tok)
    state = loaded.trainable_state_dict()
    assert set(state) == set(heads_state)
    for name, tensor in state.items():
        source = trunk_state if name in trunk_state else heads_state
        assert torch.equal(tensor, source[name]), name
    assert any(n.startswith("pointer.") for n in state)
    meta = json.loads((tmp_path / "graft" / "config.json").read_text())
    assert meta["stage"] == "absent" and meta["graft"]["trunk_from"] == str(trunk_dir)
    assert meta["config"]["object_pointer"] is True
    assert json.loads((tmp_path / "graft" / "pointer_state.json").read_text()) == {"threshold": 0.5}
    assert json.loads((tmp_path / "graft" / "trainer_state.json").read_text()) == {"step": 300}


def test_graft_refuses_checkpoints_of_different_models(tmp_path):
    heads_dir = pointer_model(seed=0).save_pretrained(tmp_path / "heads")
    other_dir = tiny_model(seed=1, scene_encoder="points").save_pretrained(tmp_path / "points")
    with pytest.raises(CheckpointError, match="not the same model"):
        graft_checkpoint(heads_dir, other_dir, tmp_path / "graft")
    with pytest.raises(CheckpointError, match="config.json is missing"):
        graft_checkpoint(heads_dir, tmp_path / "nowhere", tmp_path / "graft")
    (other_dir / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        graft_checkpoint(heads_dir, other_dir, tmp_path / "graft")
    assert not (tmp_path / "graft" / "config.json").exists()
