"""`llm3d bag record-sim|from-frames|play|info`: recorded ROS 2 bags as an input like any other."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from llm3d_cli.registry import command
from llm3d_cli.usage import (check_dir, check_new_path, check_seed, non_negative_float, non_negative_int,
                             positive_float, positive_int)

log = logging.getLogger("llm3d.bag")


def _common(q: argparse.ArgumentParser) -> None:
    q.add_argument("--config", type=Path, default=None, help="YAML parameter file (default: launch/llm3d.yaml)")


def _writing(q: argparse.ArgumentParser) -> None:
    q.add_argument("--out", type=Path, required=True, help="bag folder to create (must not exist)")
    q.add_argument("--storage", choices=["mcap", "sqlite3"], default=None, help="bag storage (default: config)")
    q.add_argument("--color-format", choices=["raw", "jpeg", "png"], default=None,
                   help="colour as rgb8 Image (raw) or CompressedImage (default: config)")
    q.add_argument("--depth-format", choices=["16UC1", "32FC1", "png"], default=None,
                   help="depth as Image 16UC1/32FC1 or CompressedImage compressedDepth png (default: config)")


def _add_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bag_command", metavar="BAG_COMMAND", required=True)
    h = "explore a simulated scene and record the run as a ROS 2 bag (annotations saved inside the bag folder)"
    q = sub.add_parser("record-sim", help=h, description=h)
    q.add_argument("--seed", type=int, required=True, help="procedural scene seed (the split follows from it)")
    q.add_argument("--max-steps", type=positive_int, default=None, help="exploration actions (default: config)")
    q.add_argument("--width", type=positive_int, default=320, help="image width (intrinsics scaled; default 320)")
    q.add_argument("--height", type=positive_int, default=240, help="image height (default 240)")
    _writing(q)
    _common(q)
    h = "convert a folder of posed RGB-D frames (7-Scenes or TUM RGB-D layout) into a ROS 2 bag"
    q = sub.add_parser("from-frames", help=h, description=h)
    q.add_argument("frames", type=Path, help="frame folder")
    q.add_argument("--every", type=positive_int, default=1, help="take every N-th frame")
    q.add_argument("--limit", type=non_negative_int, default=0, help="at most this many frames (0: all)")
    _writing(q)
    _common(q)
    h = "publish a bag's messages into the running ROS 2 graph with their original timing"
    q = sub.add_parser("play", help=h, description=h)
    q.add_argument("bag", type=Path)
    q.add_argument("--rate", type=positive_float, default=1.0, help="playback speed factor (default 1.0)")
    q.add_argument("--topics", nargs="*", default=None, help="play only these topics")
    q.add_argument("--wait", type=non_negative_float, default=5.0, help="seconds to wait for a subscriber of the colour topic")
    _common(q)
    h = "topics of a bag and the posed frames it yields (pairing and TF as the mapper node)"
    q = sub.add_parser("info", help=h, description=h)
    q.add_argument("bag", type=Path)
    _common(q)


def _bag_config(args: argparse.Namespace):
    from llm3d_core.bags.config import load_bag_config

    overrides = {k: v for k, v in (("storage", getattr(args, "storage", None)),
                                   ("color_format", getattr(args, "color_format", None)),
                                   ("depth_format", getattr(args, "depth_format", None))) if v}
    return load_bag_config(args.config, overrides)


def _wrap(items, desc, total):
    from llm3d_core.progress import progress

    return progress(items, desc=desc, total=total)


@command("bag", "recorded ROS 2 bags: record from the simulator, convert frame folders, play, inspect", _add_args)
def run(args: argparse.Namespace) -> int:
    # A missing or damaged bag, a bad config: llm3d_cli.main reports them (one line, exit 2).
    result = _RUN[args.bag_command](args)
    print(json.dumps(result, indent=1))
    return 0


def _record_sim(args: argparse.Namespace) -> dict:
    from sim.config import load_sim_config
    from sim.datagen.maps import map_sim_config
    from sim.record_bag import record_sim_bag

    check_seed(args.seed)
    check_new_path(args.out)
    sim_config = map_sim_config(load_sim_config(args.config), args.width, args.height, args.max_steps)
    return record_sim_bag(args.seed, args.out, sim_config, _bag_config(args), wrap=_wrap).to_dict()


def _from_frames(args: argparse.Namespace) -> dict:
    from llm3d_core.bags.convert import frames_to_bag

    check_dir(args.frames, "frames", "frame folder")
    check_new_path(args.out)
    return frames_to_bag(args.frames, args.out, _bag_config(args), every=args.every, limit=args.limit,
                         wrap=_wrap).to_dict()


def _play(args: argparse.Namespace) -> dict:
    from llm3d_ros.env import apply_ros_environment

    apply_ros_environment()  # before rclpy is imported: the venv's RMW, profile and discovery range
    from llm3d_ros.bag_player import play_bag

    return play_bag(args.bag, args.rate, _bag_config(args), args.topics, args.wait).to_dict()


def _info(args: argparse.Namespace) -> dict:
    from llm3d_core.bags.errors import BagError
    from llm3d_core.bags.reader import BagFrameReader

    with BagFrameReader(args.bag, _bag_config(args)) as reader:
        topics = {t: {"type": s.msgtype, "count": s.count} for t, s in sorted(reader.source.topics.items())}
        try:
            for _ in reader.frames():
                pass
        except BagError as err:
            print(f"llm3d bag info: {err}", file=sys.stderr)
        return {"path": str(args.bag), "storage": reader.source.storage, "topics": topics, "read": reader.report.to_dict()}


_RUN = {"record-sim": _record_sim, "from-frames": _from_frames, "play": _play, "info": _info}
