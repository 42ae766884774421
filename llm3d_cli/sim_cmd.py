"""`llm3d sim render|explore`: simulator frames in the 7-Scenes layout, with annotations."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

from llm3d_cli.registry import command
from llm3d_cli.usage import UsageError, check_seed, positive_int

log = logging.getLogger("llm3d.sim")


def _add_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="sim_command", metavar="SIM_COMMAND", required=True)
    for name, help_ in (("render", "render views of a procedural scene (random navigable poses)"),
                        ("explore", "run the frontier explorer and record its posed RGB-D trajectory")):
        q = sub.add_parser(name, help=help_, description=help_)
        q.add_argument("--seed", type=int, default=None, help="scene seed (train 0-9999, val 10000-10999, test 11000-11999)")
        q.add_argument("--scene", type=Path, default=None, help="scene .json or mesh file instead of --seed")
        q.add_argument("--out", type=Path, required=True, help="output folder (7-Scenes layout)")
        q.add_argument("--config", type=Path, default=None, help="YAML parameter file (default: launch/llm3d.yaml)")
        q.add_argument("--backend", choices=["auto", "egl", "raycast", "habitat"], default=None, help="renderer (overrides the config)")
        q.add_argument("--width", type=positive_int, default=None, help="image width (scales the intrinsics of the config)")
        q.add_argument("--height", type=positive_int, default=None, help="image height")
        if name == "render":
            q.add_argument("--views", type=positive_int, default=30, help="number of views")
        else:
            q.add_argument("--max-steps", type=positive_int, default=None, help="exploration action budget")


def _config(args: argparse.Namespace):
    import dataclasses

    from sim.config import load_sim_config

    cfg = load_sim_config(args.config)
    render = cfg.render
    if args.width or args.height:
        w, h = args.width or render.width, args.height or render.height
        s = w / render.width  # keep the field of view when the image size changes
        render = dataclasses.replace(render, width=w, height=h, fx=render.fx * s, fy=render.fy * h / render.height,
                                     cx=None if render.cx is None else render.cx * s,
                                     cy=None if render.cy is None else render.cy * h / render.height)
    if args.backend:
        render = dataclasses.replace(render, backend=args.backend)
    explore = cfg.explore
    if getattr(args, "max_steps", None):
        explore = dataclasses.replace(explore, max_steps=args.max_steps)
    return dataclasses.replace(cfg, render=render, explore=explore)


@command("sim", "simulator: render views or explore a procedural scene, written in the 7-Scenes layout", _add_args)
def run(args: argparse.Namespace) -> int:
    import numpy as np

    from llm3d_core.progress import progress
    from sim.io import FrameWriter
    from sim.simulator import Simulator, to_frame

    if (args.seed is None) == (args.scene is None):
        raise UsageError("give exactly one of --seed or --scene")
    check_seed(args.seed)
    if args.scene is not None and not args.scene.is_file():
        raise UsageError(f"argument --scene: no such file: {args.scene}")
    cfg = _config(args)
    sim = Simulator(cfg)
    try:
        scene = sim.load(args.seed if args.seed is not None else args.scene)
        args.out.mkdir(parents=True, exist_ok=True)
        scene.save(args.out)
        writer = FrameWriter(args.out, sim.K)
        summary = {"scene_id": scene.scene_id, "seed": scene.seed, "split": scene.split, "instances": len(scene.instances),
                   "renderer": sim.renderer.name, "width": cfg.render.width, "height": cfg.render.height}
        if args.sim_command == "render":
            rng = np.random.default_rng(0 if args.seed is None else args.seed)
            for i in progress(range(args.views), desc="rendering", total=args.views):
                x, y = sim.grid.sample_navigable(rng)
                sim.agent.reset(x, y, float(rng.uniform(-math.pi, math.pi)))
                writer.write(to_frame(sim.observe(), i * cfg.explore.frame_dt))
            summary["frames"] = writer.count
        else:
            from sim.explore import Explorer

            explorer = Explorer(sim, cfg.explore)
            bar = iter(progress(range(cfg.explore.max_steps + 1), desc="exploring", total=cfg.explore.max_steps + 1))
            result = explorer.run(on_frame=lambda frame, i: (writer.write(frame), next(bar, None)), keep_frames=False)
            for _ in bar:  # finish the bar when exploration ended early
                break
            summary.update(frames=writer.count, steps=result.steps, coverage=round(result.coverage, 4),
                           collisions=result.collisions)
            np.savetxt(args.out / "path_xy.txt", result.path_xy, fmt="%.4f")
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary, indent=1))
        return 0
    finally:
        sim.close()
