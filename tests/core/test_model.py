"""The 3D-LLM on a tiny random LLM: training lowers the loss, checkpoints round-trip exactly,
bad checkpoints and bad inputs give clear errors, the dataset reads the generator's JSONL."""

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from llm3d_core.model.location_tokens import encode_box
from llm3d_core.model.modeling_llm3d import CheckpointError, InputTooLongError, Llm3dModel
from llm3d_core.model.scene import EmptySceneError, SceneInput, scene_from_arrays

# The tiny models run on CPU; LLM3D_TEST_DEVICE=cuda runs the same tests on a GPU (device check).
TEST_DEVICE = os.environ.get("LLM3D_TEST_DEVICE", "cpu")

# ---------------------------------------------------------------------- tiny stand-ins
# A byte-level BPE tokenizer and a 2-layer Llama built in memory (no files, no model hub), so
# these tests run in seconds on a CPU.
CORPUS = [
    "Describe the scene. There is a red chair next to a wooden table in the kitchen.",
    "What color is the sofa? The sofa is blue. How many chairs are there? three",
    "Plan: make coffee. 1. go to the counter 2. pick up the mug 3. use the coffee machine",
    "Locate: the lamp on the desk. Navigate: go to the fridge. Answer with numbered steps.",
    "Scene: system user assistant. Answer briefly. Locations are written with tokens.",
]


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from llm3d_core.model.prompting import CHATML_TEMPLATE

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", bos_token="<|im_start|>",
                                   pad_token="<|endoftext|>")
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_llm(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    model.eval()
    return model


def tiny_config(**overrides):
    from llm3d_core.model.configuration_llm3d import Llm3dConfig

    base = dict(feature_dim=16, text_dim=8, num_points=64, pos_dim=8, d_model=32, num_queries=4, num_layers=1,
                num_heads=2, max_objects=6, max_input_tokens=400, max_new_tokens=12, device=TEST_DEVICE)
    base.update(overrides)
    return Llm3dConfig(**base)


def tiny_model(seed: int = 0, **overrides):
    from llm3d_core.model.modeling_llm3d import Llm3dModel

    tok = tiny_tokenizer()
    model = Llm3dModel(tiny_config(**overrides), tiny_llm(len(tok), seed), tok)
    return model.to(TEST_DEVICE)


def tiny_scene(seed: int = 0, num_points: int = 64, feature_dim: int = 16, objects: int = 3):
    from llm3d_core.model.scene import SceneInput

    g = torch.Generator().manual_seed(seed)
    points = torch.rand(num_points, 3, generator=g) * torch.tensor([4.0, 3.0, 2.5])  # (N, 3)
    boxes = []
    for _ in range(objects):
        lo = torch.rand(3, generator=g) * 2
        boxes.append(torch.cat([lo, lo + 0.3 + torch.rand(3, generator=g)]))
    return SceneInput(points=points, features=torch.randn(num_points, feature_dim, generator=g),
                      bounds=torch.tensor([[-0.1, -0.1, -0.1], [4.1, 3.1, 2.6]]),
                      object_features=torch.randn(objects, feature_dim, generator=g),
                      object_text=torch.randn(objects, 8, generator=g),
                      object_boxes=torch.stack(boxes) if boxes else torch.zeros(0, 6),
                      object_ids=torch.arange(objects), object_labels=["chair"] * objects,
                      colors=torch.rand(num_points, 3, generator=g), object_colors=torch.rand(objects, 3, generator=g))


def np_box(scene, i: int = 0) -> np.ndarray:
    return scene.object_boxes[i].double().numpy()


# ---------------------------------------------------------------------- tests


def fixed_batch(model):
    a, b = tiny_scene(0), tiny_scene(1)
    samples = [model.make_sample("qa", "What color is the sofa?", target="blue"),
               model.make_sample("ground", "the chair", target="chair " + encode_box(np_box(b), b.scene_bounds)),
               model.make_sample("dialog", "and the table?", [("What color is the sofa?", "blue")], target="brown")]
    return model.collate_scenes([a, b, a]), samples


@pytest.mark.parametrize("encoder", ["points", "objects"])
def test_training_step_lowers_loss_and_llm_stays_frozen(encoder):
    from llm3d_core.training.train import TrainConfig, make_optimizer, train_step

    model = tiny_model(scene_encoder=encoder)
    frozen = {n: p.clone() for n, p in model.llm.named_parameters()}
    batch = fixed_batch(model)
    opt, sched = make_optimizer(model, TrainConfig(data="x", out="y", lr=3e-3, warmup_steps=0, max_steps=20))
    losses = [train_step(model, [batch], opt, sched) for _ in range(8)]
    assert losses[-1] < losses[0] - 0.1, losses
    assert all(torch.equal(p, frozen[n]) for n, p in model.llm.named_parameters())
    counts = model.parameter_counts()
    assert counts["trainable"] > 0 and counts["frozen"] == sum(p.numel() for p in frozen.values())


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_model(seed=0)
    with torch.no_grad():  # make the trainable part differ from a fresh init
        for p in model.scene_encoder.parameters():
            p.add_(0.01)
    model.eval()
    scene = tiny_scene(2)
    sample = model.make_sample("ground", "the chair")
    prefix, mask = model.encode_scene(model.collate_scenes([scene]))
    out_a = model.generate(prefix, mask, sample, "ground")
    model.save_pretrained(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert not any(k.startswith("llm.") for k in saved["keys"])  # the frozen LLM is not stored

    tok = tiny_tokenizer()
    loaded = Llm3dModel.from_pretrained(tmp_path / "ckpt", llm=tiny_llm(len(tok), seed=0), tokenizer=tok,
                                        device=TEST_DEVICE)
    prefix_b, mask_b = loaded.encode_scene(loaded.collate_scenes([scene]))
    assert torch.equal(prefix, prefix_b)
    out_b = loaded.generate(prefix_b, mask_b, loaded.make_sample("ground", "the chair"), "ground")
    assert out_a.token_ids == out_b.token_ids and out_a.text == out_b.text
    answer = loaded.session(scene).ask("the chair", "ground")
    assert answer.box is not None and answer.box.shape == (6,)


def test_corrupt_or_mismatched_checkpoint_raises_checkpoint_error(tmp_path):
    model = tiny_model()
    ckpt = model.save_pretrained(tmp_path / "ckpt")
    vocab = len(tiny_tokenizer())

    def load(folder, **kw):
        return Llm3dModel.from_pretrained(folder, llm=kw.pop("llm", tiny_llm(vocab)), tokenizer=tiny_tokenizer(), **kw)

    with pytest.raises(CheckpointError, match="config.json is missing"):
        load(tmp_path / "nowhere")
    # wrong shapes: same keys, another d_model
    with pytest.raises(CheckpointError, match="shape"):
        load(ckpt, overrides={"d_model": 64})
    # another scene encoder: missing / unexpected keys
    with pytest.raises(CheckpointError, match="missing"):
        load(ckpt, overrides={"scene_encoder": "objects"})
    # another LLM than the one it was trained with
    from transformers import LlamaConfig, LlamaForCausalLM

    other = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    with pytest.raises(CheckpointError, match="llm_hidden_size"):
        load(ckpt, llm=other)
    # corrupt weights file
    (ckpt / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load(ckpt)
    # corrupt / invalid config
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load(ckpt)
    (ckpt / "config.json").write_text(json.dumps({"format": 1, "model_type": "llm3d", "config": {"d_model": -1}}))
    with pytest.raises(CheckpointError, match="d_model"):
        load(ckpt)


def test_empty_map_and_overlong_input_raise_clear_errors():
    with pytest.raises(EmptySceneError, match="no points"):
        scene_from_arrays(np.zeros((0, 3)), np.zeros((0, 16)), num_points=64)
    model = tiny_model(max_input_tokens=120)
    with pytest.raises(InputTooLongError, match="max_input_tokens"):
        model.make_sample("qa", "is the sofa blue? " * 60)
    with pytest.raises(ValueError, match="feature_dim"):
        model.encode_scene(model.collate_scenes([tiny_scene(0, feature_dim=7)]))


def test_dialog_session_reuses_the_scene_prefix(monkeypatch):
    model = tiny_model(scene_encoder="objects")
    model.eval()
    session = model.session(tiny_scene(0, objects=0))  # no objects still gives one token
    calls = []
    monkeypatch.setattr(model, "encode_scene", lambda *a: calls.append(1))
    first = session.ask("What color is the sofa?", "dialog")
    session.ask("and the table?", "dialog")
    assert calls == [] and len(session.history) == 2 and session.history[0][1] == first.text
    nav = session.ask("go to the fridge", "navigate")
    assert nav.point is not None and nav.point.shape == (3,)


def test_prefix_cache_gives_the_one_pass_logits_and_is_not_changed_by_answers():
    """Keys and values over [before | scene prefix] are computed once per session (PrefixCache): the
    next-token logits after [cache | question] equal one pass over the whole prompt, and an answer
    extends a copy, so a later question sees the same cache as a fresh session."""
    model = tiny_model(scene_encoder="objects")
    model.eval()
    scene = tiny_scene(1)
    session = model.session(scene)
    sample = model.make_sample("qa", "How many chairs are there?")
    with torch.no_grad():
        embeds, mask, _ = model.assemble([sample], session.prefix, session.prefix_mask)
        whole = model.decoder()(inputs_embeds=embeds, attention_mask=mask).last_hidden_state  # (1, T, H)
        cache = session.prefix_cache(sample.before)
        after = model.embed_ids(torch.tensor([sample.after], device=model.device))
        full_mask = torch.cat([cache.mask, cache.mask.new_ones(1, len(sample.after))], dim=1)
        split = model.decoder()(inputs_embeds=after, attention_mask=full_mask,
                                past_key_values=copy.deepcopy(cache.past)).last_hidden_state  # (1, La, H)
    nb, plen = len(sample.before), session.prefix.shape[1]
    torch.testing.assert_close(split[0, -1], whole[0, -1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cache.object_states, whole[:, nb: nb + plen], rtol=1e-4, atol=1e-5)

    questions = [("What color is the sofa?", "qa"), ("the chair", "ground"), ("make coffee", "plan"),
                 ("What color is the sofa?", "qa")]
    reused = [session.ask(q, task) for q, task in questions]
    fresh = [model.session(scene).ask(q, task) for q, task in questions]
    assert session.prefix_cache(sample.before) is cache  # built once, reused by every answer
    assert [a.text for a in reused] == [a.text for a in fresh]
    assert reused[0].text == reused[3].text
    assert np.array_equal(reused[1].box, fresh[1].box)

    # A fork (a new conversation on the same map) shares the prefix and its cache, not the history.
    session.ask("What color is the sofa?", "dialog", remember=True)
    fork = session.fork()
    assert fork.history == [] and len(session.history) == 1
    assert fork.prefix_cache(sample.before) is cache
    assert [fork.ask(q, task).text for q, task in questions] == [a.text for a in fresh]
    assert len(session.history) == 1  # the fork's answers are not the parent's history


def write_tiny_dataset(root: Path, feature_dim: int = 16, num_points: int = 64) -> Path:
    """Two scenes as scene caches (what the mapper's maps become) + a JSONL with every task."""
    from llm3d_core.model.data import scene_cache_path

    for i, sid in enumerate(["scene_a", "scene_b"]):
        tiny_scene(i, num_points, feature_dim).save(scene_cache_path(root, sid))
    box = [0.2, 0.3, 0.0, 0.8, 0.9, 0.7]
    recs = [
        {"task": "caption", "question": "", "answers": ["a kitchen with a red chair"]},
        {"task": "qa", "question": "What color is the sofa?", "answers": ["blue", "dark blue"], "qtype": "color"},
        {"task": "ground", "question": "the chair near the table", "answers": ["chair"], "boxes": [box],
         "object_ids": [3], "unique": True},
        {"task": "ground", "question": "a chair", "answers": ["chair"], "boxes": [box], "unique": False},
        {"task": "plan", "question": "make coffee", "answers": ["1. go to the counter"],
         "steps": ["go to the counter", "pick up the mug"]},
        {"task": "navigate", "question": "go to the fridge", "answers": ["fridge"], "goal": [1.0, 2.0, 0.0]},
        {"task": "dialog", "question": "and the table?", "answers": ["brown"],
         "turns": [{"question": "What color is the sofa?", "answers": ["blue"]}]},
    ]
    for split in ("train", "val"):
        with (root / f"{split}.jsonl").open("w") as f:
            for n, r in enumerate(recs):
                f.write(json.dumps({"id": f"{split}-{n}", "scene_id": ["scene_a", "scene_b"][n % 2], "split": split,
                                    "object_ids": [], "boxes": [], "qtype": "", **r}) + "\n")
    return root


def test_dataset_reads_the_jsonl_schema(tmp_path):
    from llm3d_core.model.data import DatasetError, JsonlSceneDataset, read_records, target_text

    root = write_tiny_dataset(tmp_path)
    items = list(JsonlSceneDataset(root, "train", num_points=64))
    assert [r["task"] for r, _ in items] == ["caption", "qa", "ground", "ground", "plan", "navigate", "dialog"]
    assert all(isinstance(s, SceneInput) and s.points.shape == (64, 3) for _, s in items)
    targets = [target_text(r, s.scene_bounds) for r, s in items]
    assert targets[1] == "blue"
    assert targets[2].startswith("chair <loc_") and targets[2].count("<loc_") == 6
    assert targets[4] == "1. go to the counter\n2. pick up the mug"
    assert targets[5].count("<loc_") == 3
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": 1, "scene_id": "s", "task": "ground", "boxes": []}) + "\n")
    with pytest.raises(DatasetError, match="bad.jsonl:1.*boxes"):
        list(read_records(tmp_path / "bad.jsonl"))


def test_train_resume_and_evaluate_smoke(tmp_path):
    """Two real steps of train(cfg), a resume to step 3, then evaluate() on the val split."""
    from llm3d_core.model.evaluate import evaluate
    from llm3d_core.training.train import TrainConfig, train

    root = write_tiny_dataset(tmp_path / "data")
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "ckpt"), model=tiny_config(), batch_size=2, max_steps=2,
                      save_every=1, log_every=1)
    summary = train(cfg, model=tiny_model())
    assert len(summary["history"]) == 2
    for name in ("model.safetensors", "config.json", "trainer_state.pt", "trainer_state.json"):
        assert (tmp_path / "ckpt" / name).is_file()
    assert list((tmp_path / "ckpt" / "tb").iterdir())
    cfg3 = TrainConfig(**{**cfg.__dict__, "max_steps": 3, "resume": True})
    summary3 = train(cfg3, model=tiny_model())
    assert [h["step"] for h in summary3["history"]] == [1, 2, 3]

    tok = tiny_tokenizer()
    model = Llm3dModel.from_pretrained(tmp_path / "ckpt", llm=tiny_llm(len(tok)), tokenizer=tok)
    metrics = evaluate(model, root, "val", meteor=False, predictions_out=tmp_path / "pred.jsonl")
    assert metrics["records"] == 7 and metrics["grammar_errors"] == 0
    assert {"bleu1", "bleu4", "rouge_l", "cider"} <= set(metrics["answers"])
    assert set(metrics["grounding"]) == {"unique", "multiple", "overall"}
    assert "plan_step_acc" in metrics and metrics["navigate"]["n"] == 1
    assert set(metrics["latency_s"]) == {"caption", "qa", "ground", "plan", "navigate", "dialog"}


def test_metrics():
    from llm3d_core.geometry import box_iou_3d
    from llm3d_core.model.evaluate import exact_match, normalize_answer, parse_steps, step_accuracy

    assert normalize_answer("The Red, chair!") == "red chair"
    assert exact_match("a blue sofa.", ["Blue sofa"])
    # yes/no and count questions: a verdict stated first, then explained, counts by the verdict
    assert exact_match("No, there is no giraffe here.", ["no"]) and exact_match("0: there are no mugs here.", ["0"])
    assert not exact_match("No, there is no giraffe here.", ["yes"]) and not exact_match("3: three mugs", ["2"])
    assert not exact_match("No, there is no giraffe here.", ["no giraffe"])  # other answers stay strict
    assert not exact_match("nothing: no giraffe", ["no"]) and not exact_match("no giraffe", ["no"])
    assert box_iou_3d([0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1]) == pytest.approx(1.0)
    assert box_iou_3d([0, 0, 0, 1, 1, 1], [0.5, 0, 0, 1.5, 1, 1]) == pytest.approx(1 / 3)
    assert step_accuracy(parse_steps("1. go to the sink\n2. open tap"), ["go to sink", "take cup"]) == 0.5


@pytest.mark.slow
def test_real_smollm2_answers_within_16_tokens():
    """The real backbone (converted once to the cache) loads and answers; ~10 s."""
    from llm3d_core.model.configuration_llm3d import Llm3dConfig

    model = Llm3dModel.build(Llm3dConfig(device="cpu", feature_dim=16, num_points=64, max_new_tokens=16))
    assert model.config.llm_hidden_size == 576 and model.config.llm_vocab_size == 49152
    answer = model.session(tiny_scene(0)).ask("What is in the room?", "qa", max_new_tokens=16)
    assert answer.tokens <= 16 and isinstance(answer.text, str)
    ground = model.session(tiny_scene(0)).ask("the chair", "ground", max_new_tokens=16)
    assert ground.box is not None


def test_frozen_llm_in_bfloat16_halves_its_memory_and_still_answers():
    """llm_dtype bfloat16 (the reasoner node's `auto` on CPUs with bf16 units): the frozen LLM's weights
    take half the bytes, the trained parts stay float32, and answers and boxes come out as before."""
    from llm3d_core.model.configuration_llm3d import Llm3dConfig
    from llm3d_core.model.llm import resolve_llm_dtype

    model = Llm3dModel.build(Llm3dConfig(device="cpu", feature_dim=16, num_points=64, max_new_tokens=16,
                                         llm_dtype="bfloat16"))
    llm_dtypes = {p.dtype for p in model.llm.parameters()}
    trained = {p.dtype for name, p in model.named_parameters() if not name.startswith("llm.")}
    assert llm_dtypes == {torch.bfloat16} and trained == {torch.float32}
    assert sum(p.numel() * p.element_size() for p in model.llm.parameters()) < 300e6  # 0.52 GB in float32
    answer = model.session(tiny_scene(0)).ask("What is in the room?", "qa", max_new_tokens=16)
    assert answer.tokens <= 16 and isinstance(answer.text, str)
    assert model.session(tiny_scene(0)).ask("the chair", "ground", max_new_tokens=16).box is not None
    assert resolve_llm_dtype("float32", "cpu") == torch.float32
    assert resolve_llm_dtype("auto", "cpu") in (torch.bfloat16, torch.float32)
    with pytest.raises(ValueError, match="llm_dtype"):
        Llm3dConfig(llm_dtype="int4")
    with pytest.raises(ValueError, match="freeze_llm"):
        Llm3dConfig(llm_dtype="bfloat16", freeze_llm=False)
    Llm3dConfig(llm_dtype="auto", freeze_llm=False)  # the node's default: float32 for a trained LLM
    unfrozen = Llm3dModel.build(Llm3dConfig(device="cpu", feature_dim=16, num_points=64, freeze_llm=False,
                                            llm_dtype="auto"))
    assert {p.dtype for p in unfrozen.llm.parameters()} == {torch.float32}


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft calls a renamed transformers helper
def test_lora_option_trains_adapters_and_checkpoints_them(tmp_path):
    from llm3d_core.training.train import TrainConfig, make_optimizer, train_step

    model = tiny_model(lora=True)
    batch = fixed_batch(model)
    opt, sched = make_optimizer(model, TrainConfig(data="x", out="y", lr=3e-3, warmup_steps=0))
    train_step(model, [batch], opt, sched)
    keys = model.trainable_state_dict().keys()
    assert any("lora_" in k for k in keys) and not any("lora_" not in k and k.startswith("llm.") for k in keys)
    model.save_pretrained(tmp_path / "ckpt")
    vocab = len(tiny_tokenizer())
    loaded = Llm3dModel.from_pretrained(tmp_path / "ckpt", llm=tiny_llm(vocab), tokenizer=tiny_tokenizer(), device=TEST_DEVICE)
    assert all(torch.equal(v, loaded.trainable_state_dict()[k]) for k, v in model.trainable_state_dict().items())


def test_cli_commands_are_registered():
    from llm3d_cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "--data", "d", "--out", "o", "--max-steps", "3", "--resume"])
    assert args.max_steps == 3 and args.resume
    assert parser.parse_args(["eval", "--data", "d", "--split", "test", "--ckpt", "c"]).split == "test"
    assert parser.parse_args(["ask", "--map", "m", "--task", "ground", "the chair"]).task == "ground"


def test_scene_cache_round_trip_keeps_colours_and_refuses_an_old_format(tmp_path):
    from safetensors.torch import save_file

    from llm3d_core.model.scene import SceneCacheError

    scene = tiny_scene(3, 64, 16, objects=4)
    loaded = SceneInput.load(scene.save(tmp_path / "s.safetensors"))
    for key, value in scene.to_tensors().items():
        assert torch.equal(value, loaded.to_tensors()[key]), key
    assert loaded.object_labels == scene.object_labels
    old = {k: v for k, v in scene.to_tensors().items() if "colors" not in k}
    save_file(old, str(tmp_path / "old.safetensors"), metadata={"format": "1"})
    with pytest.raises(SceneCacheError, match="format"):
        SceneInput.load(tmp_path / "old.safetensors")


def test_gemma_tokenizers_without_a_template_get_gemma_turns():
    """A Gemma tokenizer without a chat template (the base GGUF) is prompted in Gemma's turn format:
    the system text opens the first user turn, the scene is spliced into it, and <end_of_turn>
    ends an answer; a ChatML tokenizer keeps ChatML."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from llm3d_core.model.prompting import end_of_turn_id, render_prompt

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]
    tok.train_from_iterator(CORPUS * 4, trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    gemma = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
    ids = render_prompt(gemma, "Answer briefly.", "What color is the sofa?", [("Is there a sofa?", "yes")])
    before, after = gemma.decode(ids.before_scene), gemma.decode(ids.after_scene)
    assert before.startswith("<bos><start_of_turn>user") and "Answer briefly." in before and before.endswith("Scene: ")
    assert after.endswith("What color is the sofa?<end_of_turn>\n<start_of_turn>model\n")
    assert "<start_of_turn>model\nyes<end_of_turn>" in after
    assert ids.before_scene[0] == gemma.bos_token_id and gemma.convert_ids_to_tokens(end_of_turn_id(gemma)) == "<end_of_turn>"
    chatml = tiny_tokenizer()
    assert chatml.convert_ids_to_tokens(end_of_turn_id(chatml)) == "<|im_end|>"
    assert chatml.decode(render_prompt(chatml, "s", "q").after_scene).endswith("<|im_start|>assistant\n")
