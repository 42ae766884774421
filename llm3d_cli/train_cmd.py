"""`llm3d train`: train the 3D-LLM's scene encoder, projector and location tokens (LLM frozen)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from llm3d_cli.registry import command
from llm3d_cli.usage import UsageError, check_dir, positive_float, positive_int

log = logging.getLogger("llm3d.train")


def _add_args(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="folder with <split>.jsonl and maps/<scene_id>/")
    source.add_argument("--bags", type=Path,
                        help="folder of ROS 2 bags with scene annotations (llm3d bag record-sim): records and "
                             "maps are built into it (maps cached and reused), then training runs on it")
    p.add_argument("--bag-frames-every", type=positive_int, default=1, help="with --bags: fuse every N-th frame of a bag")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write (and resume from)")
    p.add_argument("--config", type=Path, default=None,
                   help="YAML: `train:` fields, model from `llm3d_reasoner.ros__parameters.model` (default: launch/llm3d.yaml)")
    p.add_argument("--split", default=None, help="training split: DIR/<split>.jsonl (default: train)")
    p.add_argument("--max-steps", type=positive_int, default=None, help="optimiser steps (overrides the config)")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--grad-accum", type=positive_int, default=None)
    p.add_argument("--lr", type=positive_float, default=None)
    p.add_argument("--scene-encoder", choices=["points", "objects"], default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--skip-missing-scenes", action="store_true",
                   help="use only records whose scene map exists (while maps are still being generated)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")


@command("train", "train the 3D-LLM on generated data (resumable; TensorBoard logs in OUT/tb)", _add_args)
def run(args: argparse.Namespace) -> int:
    import os

    check_dir(args.data, "--data", "data folder")
    check_dir(args.bags, "--bags", "bag folder")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llm3d_core.training.train import load_train_config, train

    if args.bags is not None:
        args.data = _prepare_bags(args)
    overrides = {"data": str(args.data), "out": str(args.out), "resume": bool(args.resume)}
    if args.skip_missing_scenes:
        overrides["skip_missing_scenes"] = True
    for name in ("split", "max_steps", "batch_size", "grad_accum", "lr"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    model = {k: v for k, v in (("scene_encoder", args.scene_encoder), ("device", args.device)) if v}
    if model:
        overrides["model"] = model
    cfg = load_train_config(args.config, overrides)
    records = Path(cfg.data) / f"{cfg.split}.jsonl"
    if not records.is_file():  # before the model loads (seconds)
        raise UsageError(f"no data file {records} (--data DIR holds <--split>.jsonl; `llm3d data generate` writes it)")
    summary = train(cfg)
    losses = [h["loss"] for h in summary["history"]]
    print(json.dumps({"out": summary["out"], "steps": summary["steps"], "first_loss": losses[0] if losses else None,
                      "last_loss": losses[-1] if losses else None, "seconds": round(summary["seconds"], 1),
                      "step_seconds_median": round(summary["step_seconds_median"], 3),
                      "parameters": summary["parameters"]}, indent=1))
    return 0


def _prepare_bags(args: argparse.Namespace) -> Path:
    """Records from each bag's annotations and a map per bag, written into the bag folder itself."""
    from llm3d_core.bags.config import load_bag_config
    from llm3d_core.progress import progress
    from sim.config import load_sim_config
    from sim.datagen.bags import build_bag_dataset
    from sim.datagen.maps import map_mapper_config

    mapper_config = map_mapper_config(config_path=args.config, device=args.device)
    index = build_bag_dataset(args.bags, args.split or "train", load_bag_config(args.config), mapper_config,
                              load_sim_config(args.config), frames_every=args.bag_frames_every,
                              wrap=lambda items, desc, total: progress(items, desc=desc, total=total))
    built = sum(not b.get("cached") for b in index["bags"].values())
    log.info("bags: %d scenes, %d maps built, %d reused", len(index["bags"]), built, len(index["bags"]) - built)
    return args.bags
