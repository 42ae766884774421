"""`llm3d data generate`: template-driven 3D-language data (and optional maps) for a split of procedural scenes.
`llm3d data views`: single views of a split's scenes with records about what each shows (2D-3D co-training)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from llm3d_cli.registry import command
from llm3d_cli.usage import UsageError, non_negative_int, positive_int

SPLITS = ("train", "val", "test")  # sim.scenes.SPLITS, without importing the simulator to parse arguments

log = logging.getLogger("llm3d.data")


def _add_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    help_ = "generate scenes, JSONL language records (caption, qa, ground, plan, navigate, dialog) and optional maps"
    q = sub.add_parser("generate", help=help_, description=help_)
    q.add_argument("--split", required=True, choices=SPLITS, help="train | val | test (fixed, disjoint seed ranges)")
    q.add_argument("--scenes", type=positive_int, required=True, help="number of scenes")
    q.add_argument("--out", type=Path, required=True, help="output folder (<split>.jsonl, scenes/, maps/, summary.json)")
    q.add_argument("--start", type=non_negative_int, default=0, help="index of the first seed within the split (default 0)")
    q.add_argument("--seed", type=int, default=0, help="generator seed: phrasing and sampling (default 0)")
    q.add_argument("--maps", action="store_true", help="also explore each scene and build a feature-fusion map")
    q.add_argument("--frames-every", type=positive_int, default=3, help="fuse every N-th explored frame (default 3)")
    q.add_argument("--width", type=positive_int, default=320, help="map rendering width (intrinsics scaled; default 320)")
    q.add_argument("--height", type=positive_int, default=240, help="map rendering height (default 240)")
    q.add_argument("--overwrite-maps", action="store_true", help="rebuild maps that exist (default: skip them, so "
                   "an interrupted run resumes)")
    q.add_argument("--config", type=Path, default=None, help="YAML parameter file (default: launch/llm3d.yaml)")
    q.add_argument("--name", default="", help="write <name>.jsonl instead of <split>.jsonl (extra records for the "
                   "same scenes, e.g. with another --seed, beside the split's own)")
    q.add_argument("--tasks", default="", help="comma-separated tasks to keep (default: all)")
    q.add_argument("--ground", type=non_negative_int, default=None, help="referring expressions per scene (default 16)")
    q.add_argument("--navigate", type=non_negative_int, default=None, help="navigation instructions per scene (default 10)")
    q.add_argument("--absent", type=non_negative_int, default=None, help="referring expressions per scene whose "
                   "target is absent, for the abstention head (default 0)")
    q.add_argument("--absent-lookalike", type=float, default=None, help="share of the absent categories chosen "
                   "among those with a look-alike in the scene (a tv where a monitor stands; default 0)")
    q.add_argument("--phrasing", choices=("templates", "heldout", "varied"), default="templates",
                   help="heldout: the same records asked in a grammar training never sees (held-out phrasing split); "
                   "varied: the same records, half asked in a wider training grammar with typing noise")
    help_ = ("render single views of a split's scenes (each facing one object) and write records about the objects "
             "each view shows, with boxes in the view's camera frame (UniVLG's 2D-3D co-training)")
    v = sub.add_parser("views", help=help_, description=help_)
    v.add_argument("--data", type=Path, required=True, help="data folder with <split>.jsonl and scenes/ (llm3d data generate)")
    v.add_argument("--split", required=True, choices=SPLITS, help="whose scenes: train | val | test")
    v.add_argument("--name", default="", help="write <name>.jsonl (default <split>_views) and views/<view_id>/")
    v.add_argument("--scenes", type=non_negative_int, default=0, help="at most this many scenes (default: all of the split)")
    v.add_argument("--views-per-scene", type=positive_int, default=6, help="views per scene (default 6)")
    v.add_argument("--seed", type=int, default=0, help="pose and phrasing seed (default 0)")
    v.add_argument("--config", type=Path, default=None, help="YAML parameter file (default: launch/llm3d.yaml)")


@command("data", "3D-language training and evaluation data from procedural scenes", _add_args)
def run(args: argparse.Namespace) -> int:
    if args.data_command == "views":
        return _views(args)
    return _generate(args)


def _views(args: argparse.Namespace) -> int:
    from llm3d_core.progress import progress
    from sim.config import load_sim_config
    from sim.datagen.maps import map_mapper_config
    from sim.datagen.views import ViewConfig, ViewsRequest, generate_views

    try:
        req = ViewsRequest(args.data, args.split, name=args.name, scenes=args.scenes,
                           config=ViewConfig(views_per_scene=args.views_per_scene, seed=args.seed))
    except ValueError as err:
        raise UsageError(str(err)) from None
    entry = generate_views(req, load_sim_config(args.config), map_mapper_config(config_path=args.config),
                           wrap=lambda items, desc, total: progress(items, desc=desc, total=total))
    print(json.dumps(entry, indent=1))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from llm3d_core.progress import progress
    from sim.config import load_sim_config
    from sim.datagen.dataset import DatasetRequest, generate_dataset
    from sim.datagen.generator import DatagenConfig

    counts = {k: getattr(args, k) for k in ("ground", "navigate", "absent", "absent_lookalike")
              if getattr(args, k) is not None}
    try:
        req = DatasetRequest(args.split, args.scenes, args.out, start=args.start, maps=args.maps,
                             frames_every=args.frames_every, width=args.width, height=args.height,
                             overwrite_maps=args.overwrite_maps,
                             datagen=DatagenConfig(seed=args.seed, phrasing=args.phrasing, **counts), name=args.name,
                             tasks=[t for t in args.tasks.split(",") if t.strip()])
    except ValueError as err:
        raise UsageError(str(err)) from None
    mapper_config = None
    if args.maps:
        from sim.datagen.maps import map_mapper_config

        mapper_config = map_mapper_config(config_path=args.config)
    entry = generate_dataset(req, load_sim_config(args.config),
                             wrap=lambda items, desc, total: progress(items, desc=desc, total=total),
                             mapper_config=mapper_config)
    shown = {k: v for k, v in entry.items() if k not in ("scenes", "seeds")}
    if "maps" in shown:
        shown["maps"] = {k: v for k, v in shown["maps"].items() if k != "scenes"}
    print(json.dumps(shown, indent=1))
    return 0
