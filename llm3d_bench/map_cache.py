"""Maps of benchmark episodes built once and reused: `llm3d bench embodied --cache DIR`.

Exploring and fusing a scene is most of an episode's time on a CPU, and it does not depend on the
systems being compared. An entry is keyed by the scene seed, the simulator config (render size,
exploration), `frames_every` and the mapper config (device aside), so a changed mapper or
simulator setting never reuses a stale map. It holds the saved map (the mapper's own atomic save),
the exploration's numbers (frames, coverage, mapping seconds, the explored path and where it ended)
and, for the single-frame row, the fused frames (compressed; their feature maps are recomputed by
the mapper's encoder when a view is used).

An entry is written to a temporary folder and renamed into place, so an interrupted run leaves no
half entry; an unreadable entry is rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from llm3d_bench.single_frame import FrameViews
    from llm3d_bench.demo import DemoConfig, MappedScene

log = logging.getLogger(__name__)
CACHE_FORMAT = 1


def cache_key(seed: int, sim_config: Any, frames_every: int, mapper_config: Any) -> str:
    """12 hex digits naming everything the map depends on."""
    mapper = {k: v for k, v in dataclasses.asdict(mapper_config).items() if k != "device"}
    text = json.dumps({"format": CACHE_FORMAT, "seed": seed, "sim": dataclasses.asdict(sim_config),
                       "frames_every": frames_every, "mapper": mapper}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def explore_and_map_cached(sim: Any, seed: int, cfg: "DemoConfig", cache: Path | None, device: str | None = None,
                           progress: Callable[..., Any] | None = None,
                           views: "FrameViews | None" = None) -> tuple["MappedScene", bool]:
    """llm3d_bench.demo.explore_and_map, read from / written to `cache` (None: no cache). Leaves the agent
    where the exploration ended and fills `views` with the fused frames when given.
    Returns (the mapped scene, whether it came from the cache)."""
    from sim.datagen.maps import map_mapper_config
    from llm3d_bench.demo import explore_and_map

    if cache is None:
        return explore_and_map(sim, seed, cfg, device, progress, on_fused=views.add if views is not None else None), False
    entry = Path(cache) / f"{seed}-{cache_key(seed, sim.config, cfg.frames_every, map_mapper_config())}"
    if (entry / "meta.json").is_file():
        try:
            return _load(entry, sim, seed, device, views), True
        except Exception as err:  # a damaged entry is rebuilt, never trusted
            log.warning("map cache entry %s unreadable (%s): rebuilding it", entry, err)
            shutil.rmtree(entry, ignore_errors=True)
    frames: list = []
    on_fused = None
    if views is not None:
        def on_fused(frame: Any, feature_map: Any) -> None:
            views.add(frame, feature_map)
            frames.append(frame)
    mapped = explore_and_map(sim, seed, cfg, device, progress, on_fused=on_fused)
    _store(entry, mapped, sim, frames if views is not None else None)
    return mapped, False


def _store(entry: Path, mapped: "MappedScene", sim: Any, frames: list | None) -> None:
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    mapped.mapper.save(tmp / "map")
    agent = sim.agent
    meta = {"format": CACHE_FORMAT, "scene": mapped.scene.scene_id, "frames": mapped.frames, "fused": mapped.fused,
            "coverage": mapped.coverage, "objects": mapped.objects, "map_seconds": mapped.map_seconds,
            "end_pose": [agent.x, agent.y, agent.yaw], "views": frames is not None}
    np.save(tmp / "explore_path_xy.npy", np.asarray(mapped.explore_path_xy, dtype=np.float64))
    if frames is not None:
        np.savez_compressed(tmp / "views.npz", **_frames_arrays(frames))
    (tmp / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(entry, ignore_errors=True)
    os.replace(tmp, entry)


def _frames_arrays(frames: list) -> dict[str, np.ndarray]:
    """(N, ...) stacks of the frames' fields (instance ids -1 where a frame has none)."""
    ids = [f.instance_ids if f.instance_ids is not None else np.full(f.depth.shape, -1, np.int32) for f in frames]
    return {"rgb": np.stack([f.rgb for f in frames]), "depth": np.stack([f.depth for f in frames]).astype(np.float32),
            "K": np.stack([f.K for f in frames]), "T": np.stack([f.T_world_camera for f in frames]),
            "ids": np.stack(ids).astype(np.int32)}


def _load(entry: Path, sim: Any, seed: int, device: str | None, views: "FrameViews | None") -> "MappedScene":
    from llm3d_core.geometry import RGBDFrame
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_bench.demo import MappedScene

    meta = json.loads((entry / "meta.json").read_text())
    if meta.get("format") != CACHE_FORMAT or (views is not None and not meta.get("views")):
        raise ValueError("entry of another format, or without the fused frames this run needs")
    scene = sim.load(seed)
    mapper = FeatureFusionMapper.load(entry / "map", device=device)
    sim.agent.reset(*meta["end_pose"])
    if views is not None:
        with np.load(entry / "views.npz") as z:
            for rgb, depth, K, T, ids in zip(z["rgb"], z["depth"], z["K"], z["T"], z["ids"]):
                views.add_lazy(RGBDFrame(rgb=rgb, depth=depth, K=K, T_world_camera=T, instance_ids=ids),
                               mapper.encode)
    log.info("map of %s from the cache (%s): %d objects", scene.scene_id, entry, len(mapper.objects))
    return MappedScene(scene, mapper, int(meta["frames"]), int(meta["fused"]), float(meta["coverage"]),
                       int(meta["objects"]), float(meta["map_seconds"]),
                       np.load(entry / "explore_path_xy.npy"), [])
