"""`llm3d map`: build a map offline from a folder of posed RGB-D frames or a recorded ROS 2 bag."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from llm3d_cli.registry import command
from llm3d_cli.usage import non_negative_int, positive_int, text

if TYPE_CHECKING:
    from llm3d_core.geometry import RGBDFrame

log = logging.getLogger("llm3d.map")


def _add_args(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--frames", type=Path, help="folder of posed RGB-D frames (7-Scenes or TUM RGB-D layout)")
    source.add_argument("--bag", type=Path, help="ROS 2 bag (mcap or sqlite3): frames paired and posed as the "
                        "mapper node does; topics from the `llm3d_bag: bag:` config section")
    p.add_argument("--out", type=Path, required=True, help="map folder to write")
    p.add_argument("--config", type=Path, default=None, help="YAML parameter file (default: launch/llm3d.yaml)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (overrides the config)")
    p.add_argument("--every", type=positive_int, default=1, help="fuse every N-th frame")
    p.add_argument("--limit", type=non_negative_int, default=0, help="stop after this many fused frames (0: all)")
    p.add_argument("--holdout", type=non_negative_int, default=0,
                   help="check depth against every K-th frame, which is then not fused (0: no check)")
    p.add_argument("--query", type=text, action="append", default=[], help="text query to rank objects (repeatable)")


@command("map", "build a map from posed RGB-D frames (a folder or a bag); save it, a PLY and a top-down PNG", _add_args)
def run(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        return _run(args, stack)


def _run(args: argparse.Namespace, stack: ExitStack) -> int:
    from llm3d_core.bags.errors import BagError

    # The input opens before torch and the mapper's encoder load (seconds): a wrong path fails at once.
    if args.bag:
        from llm3d_core.bags.config import load_bag_config
        from llm3d_core.bags.reader import BagFrameReader

        reader = stack.enter_context(BagFrameReader(args.bag, load_bag_config(args.config)))
        source, total, reports = enumerate(reader.frames()), None, [reader.report]
    else:
        from llm3d_core.data.frames import open_frame_folder

        frames = open_frame_folder(args.frames)
        source, total, reports = _folder_frames(args, frames), len(frames), []
    from llm3d_core.mapping.evaluation import depth_agreement, estimate_up_axis
    from llm3d_core.mapping.mapper import FeatureFusionMapper, load_mapper_config
    from llm3d_core.mapping.render import export_ply, topdown_png
    from llm3d_core.progress import progress

    every, holdout_k = args.every, args.holdout
    mapper = FeatureFusionMapper(load_mapper_config(args.config, args.device))
    seconds, fused, held, poses = 0.0, 0, [], []
    error: BagError | None = None
    try:
        for i, frame in progress(source, desc="mapping", total=total):
            if holdout_k and i % holdout_k == holdout_k // 2:
                held.append(frame)  # checked against, never fused
                continue
            if i % every or (args.limit and fused >= args.limit):
                continue
            seconds += mapper.integrate(frame).seconds
            fused += 1
            poses.append(frame.T_world_camera)
    except BagError as err:  # damaged bag or no poses: keep and save what was mapped, then report
        error = err
    if fused == 0:
        print(f"llm3d map: no frame was fused{f': {error}' if error else ''}", file=sys.stderr)
        return 1
    objects = mapper.update_objects()
    mapper.save(args.out)
    summary = {"frames_fused": fused, "fps": fused / seconds if seconds else 0.0, "voxels": len(mapper.voxels),
               "objects": len(objects)}
    if held and mapper.tsdf is not None:
        agreement = depth_agreement(mapper.tsdf, iter(held))
        summary["holdout_depth_median_m"] = round(agreement.median_m, 4)
        summary["holdout_depth_coverage"] = round(agreement.coverage, 3)
        summary["holdout_frames"] = agreement.frames
    queries = {}
    for query in args.query:
        hits = mapper.query(query, top_k=3)
        queries[query] = [{"id": h.object.id, "label": h.object.label, "score": round(h.score, 3),
                          "box_min": h.object.box_min.round(3).tolist(), "box_max": h.object.box_max.round(3).tolist()}
                         for h in hits]
    summary["queries"] = queries
    if args.bag:
        summary["bag"] = reports[0].to_dict() if reports else {}
    points, colors = mapper.colored_points()
    up_axis, _ = estimate_up_axis(poses[:: max(1, len(poses) // 20)])
    export_ply(args.out / "map.ply", points, colors)
    best = [hits[0]["id"] for hits in queries.values() if hits]
    name = (args.bag or args.frames).name
    topdown_png(args.out / "topdown.png", points, colors, objects, highlight=best, up_axis=up_axis,
                title=f"{name}: {len(objects)} objects, red = best match of {', '.join(queries) or '-'}")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    if error is not None:
        print(f"llm3d map: {error}; the map of the {fused} frames read was saved to {args.out}", file=sys.stderr)
        return 1
    return 0


def _folder_frames(args: argparse.Namespace, frames) -> Iterator[tuple[int, RGBDFrame]]:
    """(index, frame) of an opened frame folder; frames neither fused nor held out are never loaded."""
    every, k = args.every, args.holdout
    fused = 0
    for i in range(len(frames)):
        held = k and i % k == k // 2
        if held or (i % every == 0 and not (args.limit and fused >= args.limit)):
            fused += 0 if held else 1
            yield i, frames[i]
