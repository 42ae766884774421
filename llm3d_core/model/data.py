"""Training data: JSONL records from the simulator's data generator + per-scene feature caches.

Layout: `DIR/<split>.jsonl` (one record per line, schema below) and `DIR/maps/<scene_id>/` (maps
saved by FeatureFusionMapper). Each scene is turned once into `scene_cache/<scene_id>.safetensors`
(sampled points, features, bounds, object tokens: see scene.SceneInput), so training never
re-maps (3D-LLM sec. 3.2 also precomputes its 3D features). Records stream from disk, so a
dataset larger than memory works; scene caches are loaded lazily with a small LRU.

Record schema: {"id", "scene_id", "split", "task": caption|qa|ground|plan|navigate|dialog,
"question", "answers": [str] (first canonical), "object_ids": [int], "boxes": [[6 floats]],
"unique": bool, "steps": [str], "goal": [x, y, z], "turns": [{"question", "answers"}], "qtype": str}
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from llm3d_core.model.configuration_llm3d import TASKS, Llm3dConfig, is_absent
from llm3d_core.model.location_tokens import SceneBounds, encode_box, encode_point
from llm3d_core.model.scene import SceneCacheError, SceneInput, load_map_scene

log = logging.getLogger(__name__)
CACHE_DIR_NAME = "scene_cache"


class DatasetError(ValueError):
    """A data file or record is invalid; the message names the file, line and field."""


def validate_record(rec: Any, where: str) -> dict[str, Any]:
    """Checks the fields each task needs; returns the record with optional fields defaulted."""
    if not isinstance(rec, dict):
        raise DatasetError(f"{where}: a record must be a JSON object, got {type(rec).__name__}")
    for key in ("id", "scene_id", "task"):
        if key not in rec:
            raise DatasetError(f"{where}: missing field {key!r}")
    task = rec["task"]
    if task not in TASKS:
        raise DatasetError(f"{where}: task must be one of {TASKS}, got {task!r}")
    rec = {"question": "", "answers": [], "object_ids": [], "boxes": [], "unique": True, "steps": [], "goal": None,
           "turns": [], "qtype": "", "split": "", **rec}
    if task in ("qa", "caption", "dialog") and not (rec["answers"] and isinstance(rec["answers"][0], str)):
        raise DatasetError(f"{where}: task {task} needs a non-empty 'answers' list of strings")
    if task == "ground" and not is_absent(rec):
        boxes = rec["boxes"]
        if not boxes or len(boxes[0]) != 6:
            raise DatasetError(f"{where}: task ground needs 'boxes' with [minx,miny,minz,maxx,maxy,maxz], got {boxes!r}")
    if task == "plan" and not (rec["steps"] or rec["answers"]):
        raise DatasetError(f"{where}: task plan needs 'steps' (or 'answers')")
    if task == "navigate" and (rec["goal"] is None or len(rec["goal"]) != 3):
        raise DatasetError(f"{where}: task navigate needs 'goal' [x, y, z], got {rec['goal']!r}")
    if task == "dialog":
        for i, turn in enumerate(rec["turns"]):
            if not isinstance(turn, dict) or "question" not in turn or not turn.get("answers"):
                raise DatasetError(f"{where}: turns[{i}] needs 'question' and non-empty 'answers'")
    return rec


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Streams validated records from a JSONL file (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"data file {path} not found")
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(f"{path}:{n}: invalid JSON: {err}") from err
            yield validate_record(rec, f"{path}:{n}")


def ground_label(rec: dict[str, Any]) -> str:
    """The category word a grounding answer starts with (answers[0], else 'object')."""
    answers = rec.get("answers") or []
    return str(answers[0]).strip() if answers and str(answers[0]).strip() else "object"


def plan_text(steps: list[str]) -> str:
    return "\n".join(f"{i}. {s.strip()}" for i, s in enumerate(steps, 1))


def target_text(rec: dict[str, Any], bounds: SceneBounds) -> str:
    """The answer the model learns: qa/caption/dialog -> answers[0]; plan -> numbered steps;
    ground -> category + 6 location tokens of boxes[0]; navigate -> 3 location tokens of goal."""
    task = rec["task"]
    if task == "plan":
        return plan_text(rec["steps"]) if rec["steps"] else str(rec["answers"][0])
    if task == "ground":
        box = np.asarray(rec["boxes"][0], dtype=np.float64)
        box = np.concatenate([np.minimum(box[:3], box[3:]), np.maximum(box[:3], box[3:])])
        return f"{ground_label(rec)} {encode_box(box, bounds)}"
    if task == "navigate":
        return encode_point(np.asarray(rec["goal"], dtype=np.float64), bounds)
    return str(rec["answers"][0])


def question_text(rec: dict[str, Any], bounds: SceneBounds) -> str:
    """The question as the model reads it: object captions name their object by its box in location tokens."""
    question = str(rec.get("question") or "")
    if rec["task"] == "caption" and rec.get("boxes"):
        box = np.asarray(rec["boxes"][0], dtype=np.float64)
        box = np.concatenate([np.minimum(box[:3], box[3:]), np.maximum(box[:3], box[3:])])
        question = f"{question} {encode_box(box, bounds)}".strip()
    return question


def dialog_history(rec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(t["question"]), str(t["answers"][0])) for t in rec.get("turns") or []]


# ---------------------------------------------------------------------- scene caches
def scene_cache_path(data_dir: str | Path, scene_id: str, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or Path(data_dir) / CACHE_DIR_NAME) / f"{scene_id}.safetensors"


def build_scene_cache(data_dir: str | Path, scene_ids: list[str] | None = None, num_points: int = 2048,
                      cache_dir: str | Path | None = None, seed: int = 0, force: bool = False,
                      object_points: int = 0) -> list[Path]:
    """Samples each map once into scene_cache/<scene_id>.safetensors (existing caches are kept)."""
    from llm3d_core.progress import progress

    data_dir = Path(data_dir)
    if scene_ids is None:
        maps = data_dir / "maps"
        scene_ids = sorted(p.name for p in maps.iterdir() if (p / "map.json").is_file()) if maps.is_dir() else []
    written = []
    todo = [s for s in scene_ids if force or not scene_cache_path(data_dir, s, cache_dir).is_file()]
    for sid in progress(todo, desc="scene caches", total=len(todo)) if todo else []:
        scene = load_map_scene(data_dir / "maps" / sid, num_points, seed, object_points=object_points)
        written.append(scene.save(scene_cache_path(data_dir, sid, cache_dir)))
    return written


def scene_ids_of(path: str | Path) -> list[str]:
    return sorted({str(r["scene_id"]) for r in read_records(path)})


class SceneStore:
    """Lazily loads scene caches (building a missing one from its map), keeping the last few in memory."""

    def __init__(self, data_dir: str | Path, num_points: int, cache_dir: str | Path | None = None,
                 capacity: int = 64, seed: int = 0, builder: Callable[[str], SceneInput] | None = None,
                 object_points: int = 0) -> None:
        """builder: makes a missing cache's SceneInput from the scene id (default: sample the saved map,
        with object_points per object first; see scene.sample_indices)."""
        self.data_dir, self.num_points, self.cache_dir = Path(data_dir), num_points, cache_dir
        self.object_points = object_points
        self.capacity, self.seed, self.builder = capacity, seed, builder
        self._lru: OrderedDict[str, SceneInput] = OrderedDict()

    def _build(self, scene_id: str, force: bool = False) -> None:
        if self.builder is None:
            build_scene_cache(self.data_dir, [scene_id], self.num_points, self.cache_dir, self.seed, force=force,
                              object_points=self.object_points)
        else:
            self.builder(scene_id).save(scene_cache_path(self.data_dir, scene_id, self.cache_dir))

    def available(self, scene_id: str) -> bool:
        """True when the scene has a cache file or a saved map to build one from."""
        return scene_id in self._lru or scene_cache_path(self.data_dir, scene_id, self.cache_dir).is_file() or (
            self.data_dir / "maps" / scene_id / "map.json").is_file()

    def get(self, scene_id: str) -> SceneInput:
        if scene_id in self._lru:
            self._lru.move_to_end(scene_id)
            return self._lru[scene_id]
        path = scene_cache_path(self.data_dir, scene_id, self.cache_dir)
        if not path.is_file():
            self._build(scene_id)
        try:
            scene = SceneInput.load(path)
        except SceneCacheError:
            if not (self.data_dir / "maps" / scene_id / "map.json").is_file():
                raise
            # An older cache format or a torn file: the map is the source of truth, rebuild from it.
            log.warning("rebuilding scene cache %s from its map", path)
            self._build(scene_id, force=True)
            scene = SceneInput.load(path)
        if scene.points.shape[0] != self.num_points:
            raise DatasetError(f"{path} holds {scene.points.shape[0]} points, the model samples {self.num_points}; "
                               "delete the scene_cache folder to rebuild it")
        self._lru[scene_id] = scene
        if len(self._lru) > self.capacity:
            self._lru.popitem(last=False)
        return scene


class ViewRoutingStore:
    """Scene ids that name saved views (DATA/views/<id>/view.json: single frames, model/views.py) are
    served by a views store, every other id by the maps' store; so one record file, evaluation or
    training stream may hold both (UniVLG's 2D-3D co-training)."""

    def __init__(self, data_dir: str | Path, maps: SceneStore, num_points: int, capacity: int = 64,
                 seed: int = 0) -> None:
        from llm3d_core.model.views import ViewSceneBuilder, view_dir

        self.data_dir, self.maps = Path(data_dir), maps
        builder = ViewSceneBuilder(num_points, seed)
        self.views = SceneStore(data_dir, num_points, self.data_dir / f"{CACHE_DIR_NAME}_views_{num_points}", capacity,
                                seed, builder=lambda sid: builder.scene_of_view(view_dir(self.data_dir, sid)))

    @property
    def cache_dir(self) -> Path | str | None:
        """The maps' cache folder (the views' is scene_cache_views_<N>/)."""
        return self.maps.cache_dir

    def _store(self, scene_id: str) -> SceneStore:
        from llm3d_core.model.views import is_view

        return self.views if is_view(self.data_dir, scene_id) else self.maps

    def available(self, scene_id: str) -> bool:
        store = self._store(scene_id)
        return store is self.views or store.available(scene_id)  # a saved view builds its cache on demand

    def get(self, scene_id: str) -> SceneInput:
        return self._store(scene_id).get(scene_id)


def dense_scene_store(data_dir: str | Path, num_points: int, capacity: int = 64,
                      object_points: int = 0) -> ViewRoutingStore:
    """Scene caches sampled at another density (the mask head's), in scene_cache_<N>/ beside the
    encoder's (scene_cache_<N>_obj<P>/ with object_points), built from the same maps (views likewise,
    uniformly: a view's objects are what it shows)."""
    name = f"{CACHE_DIR_NAME}_{num_points}" + (f"_obj{object_points}" if object_points else "")
    maps = SceneStore(data_dir, num_points, Path(data_dir) / name, capacity, object_points=object_points)
    return ViewRoutingStore(data_dir, maps, num_points, capacity)


def frames2d_scene_store(data_dir: str | Path, num_points: int, max_tokens: int, grid: int,
                         capacity: int = 64) -> SceneStore:
    """The 2D baseline's scenes (llm3d_core.model.frames2d): each map's keyframes encoded and pooled
    to grid x grid tokens, no 3D fusion; cached in scene_cache_frames2d_g<grid>/. The location
    frame (bounds) is the map scene cache's."""
    from llm3d_core.model.frames2d import Frames2dSceneBuilder

    maps = SceneStore(data_dir, num_points, capacity=1)
    builder = Frames2dSceneBuilder(grid, num_points, max_tokens)

    def build(scene_id: str) -> SceneInput:
        return builder.scene_of_map(Path(data_dir) / "maps" / scene_id, maps.get(scene_id).bounds.numpy())

    return SceneStore(data_dir, num_points, Path(data_dir) / f"{CACHE_DIR_NAME}_frames2d_g{grid}", capacity,
                      builder=build)


def scene_store_for(data_dir: str | Path, config: Llm3dConfig, capacity: int = 64) -> SceneStore | ViewRoutingStore:
    """The scenes a model reads (config.scene_input): samples of the fused map (or a saved view,
    lifted) | frames2d (maps' keyframes only)."""
    if config.scene_input == "frames2d":
        return frames2d_scene_store(data_dir, config.num_points, config.max_objects, config.frame_grid, capacity)
    return ViewRoutingStore(data_dir, SceneStore(data_dir, config.num_points, capacity=capacity), config.num_points,
                            capacity, config.seed)


class JsonlSceneDataset(IterableDataset):
    """Streams (record, scene) pairs from DIR/<split>.jsonl; shards over DDP ranks and loader workers.

    With `shuffle`, a bounded buffer shuffles records (memory stays O(buffer)); `repeat` cycles
    through the file forever (training), reseeding each epoch.
    """

    def __init__(self, data_dir: str | Path, split: str, num_points: int, shuffle: bool = False, repeat: bool = False,
                 seed: int = 0, buffer_size: int = 2048, cache_dir: str | Path | None = None,
                 tasks: list[str] | None = None, skip_missing_scenes: bool = False,
                 store: SceneStore | ViewRoutingStore | None = None) -> None:
        super().__init__()
        self.path = Path(data_dir) / f"{split}.jsonl"
        if not self.path.is_file():
            raise DatasetError(f"data file {self.path} not found (expected DIR/<split>.jsonl)")
        self.store = store or SceneStore(data_dir, num_points, cache_dir, seed=seed)
        self.shuffle, self.repeat, self.seed, self.buffer_size = shuffle, repeat, seed, buffer_size
        self.tasks = set(tasks) if tasks else None
        self.skip_missing_scenes = skip_missing_scenes  # maps still being generated: use those that exist
        self.wait_for_maps_s, self.wait_poll_s = 3600.0, 30.0  # with skip_missing_scenes: how long to wait for a first map
        self.epoch = 0

    def _shard(self) -> tuple[int, int]:
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        info = get_worker_info()
        if info is not None:
            rank, world = rank * info.num_workers + info.id, world * info.num_workers
        return rank, world

    def _records(self) -> Iterator[dict[str, Any]]:
        rank, world = self._shard()
        for i, rec in enumerate(read_records(self.path)):
            # Absent-target records train the abstention head on the frozen model (model/absence.py),
            # not the LLM: its answers keep their format.
            if i % world == rank and (self.tasks is None or rec["task"] in self.tasks) and not is_absent(rec):
                yield rec

    def _epoch(self, epoch: int) -> Iterator[dict[str, Any]]:
        if not self.shuffle:
            yield from self._records()
            return
        rng = random.Random(self.seed * 1000003 + epoch)
        buf: list[dict[str, Any]] = []
        for rec in self._records():
            buf.append(rec)
            if len(buf) >= self.buffer_size:
                yield buf.pop(rng.randrange(len(buf)))
        rng.shuffle(buf)
        yield from buf

    def __iter__(self) -> Iterator[tuple[dict[str, Any], SceneInput]]:
        epoch, waited = self.epoch, 0.0
        while True:
            empty = True
            for rec in self._epoch(epoch):
                sid = str(rec["scene_id"])
                if self.skip_missing_scenes and not self.store.available(sid):
                    continue
                empty = False
                yield rec, self.store.get(sid)
            epoch += 1
            if empty and self.skip_missing_scenes and self.repeat and waited < self.wait_for_maps_s:
                # Maps are still being generated: wait for the first ones instead of giving up.
                log.info("no record of %s has a scene map yet; waiting for maps (%.0f s so far)", self.path, waited)
                time.sleep(self.wait_poll_s)
                waited += self.wait_poll_s
                continue
            if not self.repeat or empty:
                return
