"""`llm3d demo`: explore a held-out scene, map it, ask, ground, plan, navigate; write an HTML report."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from llm3d_cli.registry import command
from llm3d_cli.usage import UsageError, check_checkpoint, non_negative_int

log = logging.getLogger("llm3d.demo")


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="report folder (default demo_out)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="scene split (default test)")
    p.add_argument("--scene-index", type=non_negative_int, default=0, help="which scene of the split (default 0)")
    p.add_argument("--ckpt", type=Path, default=None,
                   help="checkpoint folder (default: the shipped checkpoints/llm3d-objects)")
    p.add_argument("--config", type=Path, default=None, help="YAML parameter file (default launch/llm3d.yaml)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the config's)")
    p.add_argument("--quick", action="store_true", help="a short exploration and fewer requests (smoke test)")
    p.add_argument("--ros", action="store_true",
                   help="run the episode through the ROS 2 stack: `llm3d bringup --sim` (sim bridge, mapper, "
                        "reasoner processes), the route driven on goal_pose, requests through the clients")


@command("demo", "the main job end to end: explore a held-out scene, map, ask, ground, plan, navigate; HTML report",
         _add_args)
def run(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from llm3d_bench.demo import DemoConfig, run_demo
    from sim.scenes import seeds

    # Before torch, a model or the nodes load: the scene exists, the checkpoint is one.
    try:
        cfg = DemoConfig(split=args.split, scene_index=args.scene_index)
        seeds(cfg.split, 1, cfg.scene_index)
    except ValueError as err:
        raise UsageError(f"argument --scene-index: {err}") from None
    check_checkpoint(args.ckpt)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llm3d_core.assets import resolve_checkpoint
    from llm3d_core.training.train import load_train_config
    from llm3d_core.progress import progress_bar
    from llm3d_core.reasoner import load_model
    from llm3d_bench.report import write_report

    if args.quick:
        cfg = dataclasses.replace(cfg, width=160, height=120, max_steps=60, questions=3, groundings=1, thumbnails=2,
                                  max_drive_s=30.0)
    ckpt = resolve_checkpoint(args.ckpt)
    if ckpt is None:
        print("warning: no checkpoint (checkpoints/llm3d-objects is missing); the model is untrained and its "
              "answers are arbitrary", file=sys.stderr)
    # A bad checkpoint or config (CheckpointError, LlmLoadError, ConfigError...) is reported by
    # llm3d_cli.main as a user error, exit 2.
    if args.ros:
        from llm3d_bench.ros_demo import run_ros_demo

        try:
            # The reasoner node loads the model; the mapper node saves the map into OUT/map itself.
            result, mapper = run_ros_demo(cfg, str(ckpt or ""), args.out, args.config, args.device,
                                          progress=progress_bar)
        except RuntimeError as err:  # the ROS stack failed: its message carries the nodes' last output
            print(f"llm3d demo: {err}", file=sys.stderr)
            return 1
        report = write_report(args.out, result, mapper)
    else:
        model = load_model(ckpt, load_train_config(args.config, {}).model, args.device or "auto",
                           overrides={"device": args.device} if args.device else None)
        result, mapper = run_demo(cfg, model, str(ckpt or ""), args.device, progress=progress_bar)
        report = write_report(args.out, result, mapper)
        mapper.save(args.out / "map")
    print(json.dumps(result.summary(), indent=1))
    print(f"report: {report.resolve()}")
    return 0
