"""Writes a split of the 3D-language dataset: scenes, JSONL records, optional feature-fusion maps.

Layout of the output folder (one folder may hold all three splits):
    <split>.jsonl                          records (sim.datagen.schema), one per line
    scenes/<scene_id>/scene.json|.glb      annotations and mesh (sim.scenes.scene.Scene.save)
    maps/<scene_id>/                       FeatureFusionMapper.save folders (with maps=True)
    summary.json                           {split: {scenes, records, per task, per task/qtype, maps}}
Records of all scenes are written first (seconds), maps after (minutes per scene on a CPU), so an
interrupted run still leaves complete language data; summary.json is rewritten after every map.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sim.config import SimConfig, load_sim_config
from sim.datagen.generator import DatagenConfig, generate_records
from sim.datagen.schema import validate_record
from sim.scenes.generator import generate_scene
from sim.scenes.scene import Scene, seeds

if TYPE_CHECKING:  # torch only when maps are built
    from llm3d_core.mapping.mapper import MapperConfig

log = logging.getLogger("llm3d.datagen")


@dataclass
class DatasetRequest:
    """What `generate_dataset` writes; validated before any work starts."""

    split: str  # train | val | test
    scenes: int  # number of scenes
    out: Path  # output folder
    start: int = 0  # index of the first seed within the split's range
    maps: bool = False  # also build a feature-fusion map per scene
    frames_every: int = 3  # fuse every N-th explored frame
    width: int = 320  # map rendering resolution (intrinsics scaled to keep the field of view)
    height: int = 240
    overwrite_maps: bool = False  # False: a scene whose map is already saved is skipped (an interrupted run resumes)
    datagen: DatagenConfig = field(default_factory=DatagenConfig)
    # Records go to <name>.jsonl (default: the split's name), so extra records for the same scenes
    # (another generator seed, more of one task) can sit beside <split>.jsonl and share its maps.
    name: str = ""
    tasks: list[str] = field(default_factory=list)  # keep only these tasks (empty: all)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.name = self.name or self.split
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"name must be letters, digits, '_' or '-', got {self.name!r}")
        from sim.datagen.schema import TASKS

        bad = [t for t in self.tasks if t not in TASKS]
        if bad:
            raise ValueError(f"tasks must be among {TASKS}, got {bad}")
        if self.scenes < 1:
            raise ValueError(f"scenes must be >= 1, got {self.scenes}")
        seeds(self.split, self.scenes, self.start)  # unknown split / too many scenes: ValueError naming the range
        if self.frames_every < 1:
            raise ValueError(f"frames_every must be >= 1, got {self.frames_every}")
        if not (8 <= self.width <= 8192 and 8 <= self.height <= 8192):
            raise ValueError(f"width/height must be in [8, 8192], got {self.width}x{self.height}")


def summarize(records: list[dict]) -> dict:
    """Counts per task and per task/qtype."""
    return {"records": len(records), "tasks": dict(sorted(Counter(r["task"] for r in records).items())),
            "qtypes": dict(sorted(Counter(f"{r['task']}/{r['qtype']}" for r in records).items()))}


def _write_summary(out: Path, split: str, entry: dict) -> None:
    path = out / "summary.json"
    summary = json.loads(path.read_text()) if path.is_file() else {}
    summary[split] = entry
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(path)  # atomic: a reader never sees half a summary


def generate_dataset(req: DatasetRequest, sim_config: SimConfig | None = None,
                     wrap: Callable = lambda items, desc, total: items, mapper_config: MapperConfig | None = None) -> dict:
    """Generates `req.scenes` scenes of `req.split`, writes their records (and maps); returns the summary entry.

    `sim_config` defaults to launch/llm3d.yaml's, `mapper_config` to `sim.datagen.maps.map_mapper_config()`.
    `wrap(items, desc, total)` may wrap loops in a progress display (llm3d_core.progress.progress).
    """
    out = req.out
    out.mkdir(parents=True, exist_ok=True)
    sim_config = sim_config or load_sim_config()
    t0 = time.perf_counter()
    scene_ids, records_all = [], []
    scenes: list[Scene] = []
    jsonl = out / f"{req.name}.jsonl"
    tmp = jsonl.with_suffix(".jsonl.tmp")
    with tmp.open("w") as f:
        for seed in wrap(seeds(req.split, req.scenes, req.start), desc=f"{req.split} scenes", total=req.scenes):
            scene = generate_scene(seed, sim_config.scene)
            scene.save(out / "scenes" / scene.scene_id)
            records = generate_records(scene, req.datagen, agent=sim_config.agent)
            if req.tasks:
                records = [r for r in records if r["task"] in req.tasks]
            for rec in records:
                f.write(json.dumps(validate_record(rec)) + "\n")
            scene_ids.append(scene.scene_id)
            records_all += records
            if req.maps:
                scenes.append(scene)
    tmp.replace(jsonl)
    entry = {"scenes": scene_ids, "seeds": seeds(req.split, req.scenes, req.start), **summarize(records_all),
             "records_seconds": round(time.perf_counter() - t0, 2), "jsonl": str(jsonl)}
    _write_summary(out, req.name, entry)
    if req.maps:
        entry["maps"] = _build_maps(req, scenes, sim_config, entry, wrap, mapper_config)
    return entry


def _build_maps(req: DatasetRequest, scenes: list[Scene], sim_config: SimConfig, entry: dict, wrap: Callable,
                mapper_config: MapperConfig | None) -> dict:
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from sim.datagen.maps import build_scene_map, map_mapper_config, map_sim_config
    from sim.simulator import Simulator

    sim = Simulator(map_sim_config(sim_config, req.width, req.height))
    mapper = FeatureFusionMapper(mapper_config or map_mapper_config())  # built once: loading the encoders takes seconds
    maps: dict = {"width": req.width, "height": req.height, "frames_every": req.frames_every, "scenes": {}}
    try:
        for scene in wrap(scenes, desc=f"{req.split} maps", total=len(scenes)):
            if not req.overwrite_maps and (req.out / "maps" / scene.scene_id / "map.json").is_file():
                log.info("map %s exists; skipped (overwrite_maps to rebuild)", scene.scene_id)
                continue
            stats = build_scene_map(scene, req.out / "maps" / scene.scene_id, req.frames_every, sim=sim, mapper=mapper)
            maps["scenes"][scene.scene_id] = {k: v for k, v in stats.to_dict().items() if k != "scene_id"}
            secs = [s["seconds"] for s in maps["scenes"].values()]
            maps["done"], maps["seconds_per_scene"] = len(secs), round(sum(secs) / len(secs), 2)
            log.info("map %s: %d objects, %.1f s (fusing %.1f s, objects+save %.1f s)", scene.scene_id, stats.objects,
                     stats.seconds, stats.fuse_seconds, stats.finish_seconds)
            _write_summary(req.out, req.split, {**entry, "maps": maps})
    finally:
        sim.close()
    return maps
