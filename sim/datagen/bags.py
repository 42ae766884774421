"""A training folder from recorded bags: language records from each bag's scene annotations, a map per bag.

`llm3d train --bags DIR` turns DIR (bag folders, each with the scene.json/scene.glb that `llm3d bag
record-sim` saves inside it) into the layout the trainer reads (llm3d_core.model.data):
    DIR/<split>.jsonl          records of every bag's scene (sim.datagen.generate_records)
    DIR/maps/<scene_id>/       the bag's frames fused by the core mapper (FeatureFusionMapper)
    DIR/bags.json              per bag: scene, records, frames, read report; the map cache key
Maps are the expensive part, so each is built once and reused while its bag is unchanged (same
size and modification time, same mapper config): an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from llm3d_core.bags.config import BagConfig
from sim.config import SimConfig
from sim.datagen.generator import DatagenConfig, generate_records
from sim.datagen.schema import validate_record
from sim.record_bag import SCENE_FILE
from sim.scenes.scene import load_scene

if TYPE_CHECKING:
    from llm3d_core.mapping.mapper import MapperConfig

log = logging.getLogger("llm3d.datagen.bags")
INDEX_FILE = "bags.json"


def find_bags(folder: str | Path) -> list[Path]:
    """Bag folders (metadata.yaml) and bare .mcap/.db3 files directly inside `folder`, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"bag folder not found: {folder}")
    bags = [p for p in sorted(folder.iterdir())
            if (p.is_dir() and (p / "metadata.yaml").is_file()) or (p.is_file() and p.suffix in (".mcap", ".db3"))]
    if not bags:
        raise FileNotFoundError(f"no ROS 2 bags in {folder} (folders with metadata.yaml, or .mcap/.db3 files)")
    return bags


def _annotations(bag: Path) -> Path:
    candidates = [bag / SCENE_FILE] if bag.is_dir() else [bag.with_suffix(".json"), bag.parent / f"{bag.stem}.scene.json"]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"bag {bag} has no scene annotations (looked for {', '.join(map(str, candidates))}); "
                            "`llm3d bag record-sim` saves them inside the bag folder")


def _fingerprint(bag: Path, mapper_config: MapperConfig, frames_every: int) -> dict:
    files = [bag] if bag.is_file() else sorted(f for f in bag.iterdir() if f.suffix in (".mcap", ".db3", ".yaml"))
    return {"files": {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}, "frames_every": frames_every,
            "mapper": dataclasses.asdict(mapper_config)}


def build_bag_dataset(folder: str | Path, split: str = "train", bag_config: BagConfig | None = None,
                      mapper_config: MapperConfig | None = None, sim_config: SimConfig | None = None,
                      datagen: DatagenConfig | None = None, frames_every: int = 1,
                      wrap: Callable[[Iterable, str, int], Iterable] = lambda items, desc, total: items) -> dict:
    """Writes `<split>.jsonl` and `maps/` into `folder` from the bags in it; returns the index (bags.json).

    A bag whose file is damaged contributes the map of the frames before the damage (logged);
    a bag without annotations or without any posed frame raises, naming the bag.
    """
    from llm3d_core.bags.errors import BagCorruptError
    from llm3d_core.bags.reader import BagFrameReader
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from sim.config import load_sim_config
    from sim.datagen.maps import map_mapper_config

    if frames_every < 1:
        raise ValueError(f"frames_every must be >= 1, got {frames_every}")
    folder = Path(folder)
    bags = find_bags(folder)
    sim_config = sim_config or load_sim_config()
    mapper_config = mapper_config or map_mapper_config()
    index_path = folder / INDEX_FILE
    old = json.loads(index_path.read_text()).get("bags", {}) if index_path.is_file() else {}
    index: dict = {"split": split, "bags": {}}
    jsonl = folder / f"{split}.jsonl"
    tmp = jsonl.with_suffix(".jsonl.tmp")
    scenes = []
    with tmp.open("w") as f:  # records first (seconds): an interrupted map build still leaves language data
        for bag in bags:
            scene = load_scene(_annotations(bag))
            records = generate_records(scene, datagen or DatagenConfig(), agent=sim_config.agent)
            for rec in records:
                f.write(json.dumps(validate_record(rec)) + "\n")
            scenes.append((bag, scene.scene_id, len(records)))
    tmp.replace(jsonl)
    mapper = None
    for bag, scene_id, n_records in wrap(scenes, "bag maps", len(scenes)):
        map_dir = folder / "maps" / scene_id
        key = _fingerprint(bag, mapper_config, frames_every)
        entry = {"scene_id": scene_id, "records": n_records, "map": str(map_dir), "key": key}
        previous = old.get(bag.name, {})
        if previous.get("key") == key and (map_dir / "map.json").is_file():
            index["bags"][bag.name] = {**previous, "records": n_records, "cached": True}
            log.info("map of %s is up to date (%s)", bag.name, map_dir)
            continue
        mapper = mapper or FeatureFusionMapper(mapper_config)  # built once: loading the encoders takes seconds
        mapper.reset()
        t0, fused, damage = time.perf_counter(), 0, None
        with BagFrameReader(bag, bag_config) as reader:
            try:
                for i, frame in enumerate(reader.frames()):
                    if i % frames_every == 0:
                        mapper.integrate(frame)
                        fused += 1
            except BagCorruptError as err:
                if fused == 0:
                    raise
                damage = str(err)
                log.warning("%s; mapping the %d frames read", err, fused)
            report = reader.report.to_dict()
        mapper.update_objects()
        mapper.save(map_dir)
        entry.update(frames=report["frames"], fused=fused, seconds=round(time.perf_counter() - t0, 2), damage=damage,
                     cached=False)
        index["bags"][bag.name] = entry
        index_path.write_text(json.dumps(index, indent=1))  # after every map: resumable
    index_path.write_text(json.dumps(index, indent=1))
    return index
