"""`llm3d map`: build a map offline from a folder of posed RGB-D frames."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from llm3d_cli.registry import command

log = logging.getLogger("llm3d.map")


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=Path, required=True, help="folder of posed RGB-D frames (7-Scenes layout)")
    p.add_argument("--out", type=Path, required=True, help="map folder to write")
    p.add_argument("--config", type=Path, default=None, help="YAML parameter file (default: launch/llm3d.yaml)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (overrides the config)")
    p.add_argument("--every", type=int, default=1, help="fuse every N-th frame")
    p.add_argument("--limit", type=int, default=0, help="stop after this many fused frames (0: all)")
    p.add_argument("--holdout", type=int, default=0,
                   help="check depth against every K-th frame, which is then not fused (0: no check)")
    p.add_argument("--query", action="append", default=[], help="text query to rank objects (repeatable)")


def load_mapper_config(path: Path | None, device: str | None):
    from llm3d_core.config import DEFAULT_CONFIG, config_from_dict, load_yaml, node_parameters
    from llm3d_core.mapping.mapper import MapperConfig

    params = node_parameters(load_yaml(path or DEFAULT_CONFIG), "llm3d_mapper").get("mapper", {})
    config = config_from_dict(MapperConfig, params, "llm3d_mapper.mapper")
    if device:
        import dataclasses

        config = dataclasses.replace(config, device=device)
    return config


@command("map", "build a map from a folder of posed RGB-D frames; save it, a PLY and a top-down PNG", _add_args)
def run(args: argparse.Namespace) -> int:
    from llm3d_core.data.frames import SevenScenesFrames
    from llm3d_core.mapping.evaluation import depth_agreement, estimate_up_axis
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.mapping.render import export_ply, topdown_png
    from llm3d_core.progress import progress

    frames = SevenScenesFrames(args.frames)
    indices = list(range(0, len(frames), max(args.every, 1)))
    holdout = [i for i in range(len(frames)) if args.holdout and i % args.holdout == args.holdout // 2]
    held = set(holdout)
    fuse = [i for i in indices if i not in held]
    if args.limit:
        fuse = fuse[: args.limit]
    mapper = FeatureFusionMapper(load_mapper_config(args.config, args.device))
    seconds = 0.0
    for i in progress(fuse, desc="mapping", total=len(fuse)):
        seconds += mapper.integrate(frames[i]).seconds
    objects = mapper.update_objects()
    mapper.save(args.out)
    summary = {"frames_fused": len(fuse), "fps": len(fuse) / seconds if seconds else 0.0, "voxels": len(mapper.voxels),
               "objects": len(objects)}
    if holdout and mapper.tsdf is not None:
        agreement = depth_agreement(mapper.tsdf, (frames[i] for i in holdout))
        summary["holdout_depth_median_m"] = round(agreement.median_m, 4)
        summary["holdout_depth_coverage"] = round(agreement.coverage, 3)
        summary["holdout_frames"] = agreement.frames
    queries = {}
    for text in args.query:
        hits = mapper.query(text, top_k=3)
        queries[text] = [{"id": h.object.id, "label": h.object.label, "score": round(h.score, 3),
                          "box_min": h.object.box_min.round(3).tolist(), "box_max": h.object.box_max.round(3).tolist()}
                         for h in hits]
    summary["queries"] = queries
    points, colors = mapper.colored_points()
    up_axis, _ = estimate_up_axis(frames[i].T_world_camera for i in fuse[:: max(1, len(fuse) // 20)])
    export_ply(args.out / "map.ply", points, colors)
    best = [hits[0]["id"] for hits in queries.values() if hits]
    topdown_png(args.out / "topdown.png", points, colors, objects, highlight=best, up_axis=up_axis,
                title=f"{args.frames.name}: {len(objects)} objects, red = best match of {', '.join(queries) or '-'}")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0
