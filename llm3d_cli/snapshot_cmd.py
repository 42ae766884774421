"""`llm3d snapshot`: what RViz shows of a running stack (launch/llm3d.rviz), as one top-down PNG.

For machines without a display (or without RViz): listens to the rviz file's topics for a window
(`llm3d_ros.snapshot`) and draws the occupancy grid, the map cloud, object boxes with labels,
grounding boxes, the trajectory, the goal and the robot (`llm3d_core.mapping.render.layers_png`).
Exit 0 with the PNG written; 1 when nothing arrived in the window; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llm3d_cli.registry import command
from llm3d_cli.usage import UsageError, positive_float


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("llm3d_snapshot.png"),
                   help="PNG to write (default llm3d_snapshot.png)")
    p.add_argument("--seconds", type=positive_float, default=5.0,
                   help="listen this long; the newest message of each topic is drawn (default 5)")
    p.add_argument("--namespace", default="", help="namespace of the stack, e.g. robot1 (default: none)")
    p.add_argument("--params-file", type=Path, default=None,
                   help="the stack's YAML parameter file, for its topic names and frames (default: launch/llm3d.yaml)")
    p.add_argument("--title", default="", help="picture title (default: the fixed frame and namespace)")


def check_png_target(path: Path, option: str = "--out") -> None:
    """The picture can be written: a .png name, not a folder, in a folder where a file can be created."""
    if path.suffix.lower() != ".png":
        raise UsageError(f"argument {option}: must name a .png file, got {str(path)!r}")
    if path.is_dir():
        raise UsageError(f"argument {option}: {path} is a folder; name a .png file in it")
    folder = path.parent.resolve()
    if not folder.is_dir():
        raise UsageError(f"argument {option}: no such folder: {folder}")
    from llm3d_core.mapping.render import atomic_target

    probe = atomic_target(path)  # where the picture is written first: try it now, not after listening
    try:
        probe.open("wb").close()
        probe.unlink()
    except OSError as err:
        raise UsageError(f"argument {option}: cannot write {path} ({err.strerror or err})") from None


@command("snapshot", "draw what RViz shows of a running stack (launch/llm3d.rviz) as one top-down PNG, headless",
         _add_args)
def run(args: argparse.Namespace) -> int:
    from llm3d_ros.node_set import normalize_namespace

    try:
        namespace = normalize_namespace(args.namespace)
    except ValueError as err:
        raise UsageError(f"argument --namespace: {err}") from None
    check_png_target(args.out)
    if args.params_file is not None and not args.params_file.is_file():
        raise UsageError(f"argument --params-file: no such file: {args.params_file}")

    from llm3d_ros.env import apply_ros_environment

    apply_ros_environment()  # before rclpy is imported
    from llm3d_core.mapping.render import layers_png
    from llm3d_ros.snapshot import layer_topics, take_snapshot

    topics = layer_topics(args.params_file)
    where = f" in namespace {namespace}" if namespace else ""
    print(f"listening for {args.seconds:g} s{where} (ROS_DOMAIN_ID {os.environ.get('ROS_DOMAIN_ID', '0')})", flush=True)
    snap = take_snapshot(topics, args.seconds, namespace)
    for note in snap.notes:
        print(f"note: {note}", file=sys.stderr)
    if snap.empty:
        print(f"llm3d snapshot: nothing arrived within {args.seconds:g} s on {', '.join(snap.topics.values())}: is "
              f"the stack running (llm3d bringup) on this ROS_DOMAIN_ID{where}?", file=sys.stderr)
        return 1
    print(snap.layers.summary())
    if snap.layers.bounds_xy() is None:
        print("llm3d snapshot: messages arrived but every layer is empty (no map fused yet?); no picture written",
              file=sys.stderr)
        return 1
    title = args.title or f"llm3d: what RViz shows in '{topics.fixed_frame}'{f' ({namespace})' if namespace else ''}"
    path = layers_png(args.out, snap.layers, title)
    print(f"wrote {path}")
    return 0
