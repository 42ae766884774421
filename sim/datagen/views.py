"""Single-view language data for 2D-3D co-training (UniVLG, Jain et al., ICML 2025, sec. 3-4).

UniVLG trains one model on 2D views lifted to 3D point sets and on reconstructed 3D scenes, with
referring expressions and questions about each view. Here the views come from the simulator:

- poses: for each view, one of the scene's objects is picked and the robot is placed on a
  navigable cell `min_distance`..`max_distance` metres from it, facing it (with a small jitter),
  at its camera height, so a view holds the object and what surrounds it;
- per-frame visibility: the renderer's instance image says which objects the view shows; an
  object counts as visible with at least `min_samples` valid-depth samples on the lifting grid
  (every `sample_stride`-th pixel, what the model's lifted input holds of it; at least the
  object tracker's min_instance_voxels, so every visible object is one of the view's object tokens);
- language: the scene generator's own templates (sim.datagen.generator) over the visible objects
  only, so "how many chairs are there?" counts the chairs in view and "is there a sofa here?" is
  "no" when the sofa is elsewhere in the room; relations are still computed from the objects'
  true geometry. Plans and navigation need the whole scene and are left out;
- boxes: the axis-aligned box of each object's visible pixels lifted with their depth, in the
  view's coordinates (camera by default: x right, y down, z forward, as the reasoner's
  single-view input), which is what a model seeing only this view can locate.

Layout under the data folder: `views/<view_id>/view.npz` (rgb, depth in metres, instance ids,
K, T_world_camera) and `view.json` (scene, split, visibility, the encoder and lifting settings
the view's features are made with), and `<name>.jsonl` with the records (schema as the scenes'
records; their scene_id is the view id, `<scene_id>_v<k>`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llm3d_core.model.views import VIEW_FORMAT, view_dir
from sim.datagen.generator import DatagenConfig, generate_records
from sim.datagen.schema import validate_record
from sim.scenes.scene import Scene, load_scene

if TYPE_CHECKING:
    from llm3d_core.mapping.mapper import MapperConfig
    from sim.simulator import Simulator

log = logging.getLogger("llm3d.datagen")
VIEW_TASKS = ("caption", "qa", "ground", "dialog")  # plans and navigation need the whole scene


@dataclass
class ViewConfig:
    """Where views are taken and what counts as visible."""

    views_per_scene: int = 6
    min_samples: int = 5  # valid-depth samples on the lifting grid for an object to count as visible
    min_objects: int = 2  # a view must show at least this many objects (else another pose is tried)
    min_distance: float = 1.0  # metres from the picked object's centre (horizontal)
    max_distance: float = 3.0
    yaw_jitter_deg: float = 15.0
    tries: int = 12  # poses tried per view before the view is skipped
    coordinates: str = "camera"  # camera | world: the frame of the records' boxes and the lifted points
    seed: int = 0
    # records per view (the scene generator's counts, smaller: a view holds a handful of objects)
    datagen: DatagenConfig = field(default_factory=lambda: DatagenConfig(object_captions=2, qa_per_type=1, ground=4,
                                                                         plans=0, navigate=0, dialogs=1))

    def __post_init__(self) -> None:
        for name in ("views_per_scene", "min_samples", "min_objects", "tries"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ViewConfig.{name} must be an integer >= 1, got {value!r}")
        if not 0.3 <= self.min_distance < self.max_distance <= 10.0:
            raise ValueError(f"ViewConfig needs 0.3 <= min_distance < max_distance <= 10 m, got "
                             f"{self.min_distance}, {self.max_distance}")
        if self.coordinates not in ("camera", "world"):
            raise ValueError(f"ViewConfig.coordinates must be camera or world, got {self.coordinates!r}")


@dataclass
class View:
    """One rendered view and what it shows."""

    view_id: str
    scene_id: str
    split: str
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres (0: no return)
    instance: np.ndarray  # (H, W) int32, 0 = structure
    K: np.ndarray  # (3, 3)
    T_world_camera: np.ndarray  # (4, 4)
    visible: dict[int, int]  # instance id -> valid-depth samples on the lifting grid
    target_id: int  # the object the pose was chosen to face


def visible_samples(instance: np.ndarray, depth: np.ndarray, known: set[int], stride: int = 8,
                    depth_min: float = 0.1, depth_max: float = 5.0) -> dict[int, int]:
    """Instance id -> count of its lifting-grid samples (llm3d_core.geometry.pixel_grid) with depth in
    [depth_min, depth_max], for the ids in `known`."""
    from llm3d_core.geometry import pixel_grid

    v, u = pixel_grid(*depth.shape, stride)
    d = depth[v, u]
    valid = (d >= depth_min) & (d <= depth_max)
    ids, counts = np.unique(instance[v, u][valid], return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts) if int(i) in known}


def view_boxes(view: View, ids: list[int], coordinates: str = "camera", depth_min: float = 0.1,
               depth_max: float = 5.0) -> dict[int, list[float]]:
    """Axis-aligned boxes [min xyz, max xyz] of each object's visible pixels lifted with their depth."""
    from llm3d_core.geometry import backproject, transform_points

    valid = (view.depth >= depth_min) & (view.depth <= depth_max)
    out: dict[int, list[float]] = {}
    for i in ids:
        v, u = np.nonzero(valid & (view.instance == i))
        if len(v) == 0:
            continue
        pts = backproject(view.depth, view.K, v, u)  # (M, 3) camera frame
        if coordinates == "world":
            pts = transform_points(view.T_world_camera, pts)
        out[i] = [round(float(x), 4) for x in (*pts.min(0), *pts.max(0))]
    return out


def _candidate_cells(sim: "Simulator", center_xy: np.ndarray, cfg: ViewConfig) -> np.ndarray:
    """World (x, y) of navigable cells of the largest region at the allowed distance from `center_xy`."""
    grid = sim.grid
    cells = np.argwhere(grid.largest_component())
    xy = grid.cell_to_world(cells)  # (N, 2)
    d = np.linalg.norm(xy - center_xy[None], axis=1)
    return xy[(d >= cfg.min_distance) & (d <= cfg.max_distance)]


def render_views(sim: "Simulator", scene: Scene, cfg: ViewConfig, depth_range: tuple[float, float],
                 stride: int = 8) -> list[View]:
    """Up to cfg.views_per_scene views of the loaded `scene`, each facing a picked object (module docstring)."""
    from sim.simulator import to_frame

    rng = np.random.default_rng([cfg.seed, int(scene.seed or 0), len(scene.instances)])
    known = {i.id for i in scene.instances}
    agent = sim.agent  # placed by sim.load
    views: list[View] = []
    for k in range(cfg.views_per_scene):
        for _ in range(cfg.tries):
            target = scene.instances[int(rng.integers(len(scene.instances)))]
            center = np.asarray(target.center[:2], dtype=np.float64)
            cands = _candidate_cells(sim, center, cfg)
            if len(cands) == 0:
                continue
            x, y = cands[int(rng.integers(len(cands)))]
            yaw = math.atan2(center[1] - y, center[0] - x) + math.radians(rng.uniform(-1, 1) * cfg.yaw_jitter_deg)
            agent.reset(float(x), float(y), yaw)
            frame = to_frame(sim.observe(), 0.0)
            depth = np.asarray(frame.depth, dtype=np.float32)
            visible = {i: c for i, c in visible_samples(frame.instance_ids, depth, known, stride, *depth_range).items()
                       if c >= cfg.min_samples}
            if target.id in visible and len(visible) >= cfg.min_objects:
                views.append(View(f"{scene.scene_id}_v{k:02d}", scene.scene_id, scene.split or "", frame.rgb,
                                  depth, frame.instance_ids.astype(np.int32), np.asarray(frame.K, np.float64),
                                  np.asarray(frame.T_world_camera, np.float64), visible, target.id))
                break
        else:
            log.info("scene %s: view %d skipped (no pose among %d tries showed %d objects)", scene.scene_id, k,
                     cfg.tries, cfg.min_objects)
    return views


def view_records(scene: Scene, view: View, cfg: ViewConfig, depth_range: tuple[float, float] = (0.1, 5.0),
                 grid=None) -> list[dict]:
    """Records about `view` (captions, QA, referring expressions, dialogs of the visible objects), boxes in
    the view's coordinates. `grid`: the scene's NavGrid (only avoids rebuilding one; no navigation records)."""
    insts = [i for i in scene.instances if i.id in view.visible]
    sub = Scene(scene_id=view.view_id, geometry=[], instances=insts, seed=None, split=view.split)
    datagen = dataclasses.replace(cfg.datagen, plans=0, navigate=0, seed=cfg.datagen.seed)
    records = [r for r in generate_records(sub, datagen, grid=grid) if r["task"] in VIEW_TASKS]
    boxes = view_boxes(view, [i.id for i in insts], cfg.coordinates, *depth_range)
    out = []
    for rec in records:
        if any(i not in boxes for i in rec["object_ids"]):
            continue  # cannot happen (a visible object has samples); kept so a record never carries a world box
        rec["boxes"] = [boxes[i] for i in rec["object_ids"]]
        out.append(validate_record(rec))
    return out


def save_view(view: View, folder: Path, meta: dict) -> Path:
    """Writes views/<view_id>/view.npz and view.json atomically (tmp + rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    npz, js = folder / "view.npz", folder / "view.json"
    tmp = folder / "view.tmp.npz"
    np.savez_compressed(tmp, rgb=view.rgb, depth=view.depth.astype(np.float32), instance=view.instance,
                        K=view.K, T_world_camera=view.T_world_camera)
    tmp.replace(npz)
    body = {"format": VIEW_FORMAT, "view_id": view.view_id, "scene_id": view.scene_id, "split": view.split,
            "target_id": view.target_id, "visible": {str(k): v for k, v in sorted(view.visible.items())}, **meta}
    tmp_js = folder / "view.json.tmp"
    tmp_js.write_text(json.dumps(body, indent=1))
    tmp_js.replace(js)  # view.json last: its presence means the view is complete
    return js


@dataclass
class ViewsRequest:
    """What `generate_views` writes: views of the scenes of DATA/<split>.jsonl into DATA/<name>.jsonl."""

    data: Path
    split: str
    name: str = ""  # default <split>_views
    scenes: int = 0  # at most this many scenes (0: all)
    config: ViewConfig = field(default_factory=ViewConfig)

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        self.name = self.name or f"{self.split}_views"
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"name must be letters, digits, '_' or '-', got {self.name!r}")
        if self.name == self.split:
            raise ValueError("name must differ from the split's own record file")
        if not (self.data / f"{self.split}.jsonl").is_file():
            raise ValueError(f"{self.data / (self.split + '.jsonl')} not found: generate the split first")
        if self.scenes < 0:
            raise ValueError(f"scenes must be >= 0, got {self.scenes}")


def generate_views(req: ViewsRequest, sim_config=None, mapper_config: "MapperConfig | None" = None,
                   wrap: Callable = lambda items, desc, total: items) -> dict:
    """Renders views of each scene (DATA/scenes/<scene_id>/scene.json), writes them and their records.

    The encoder and lifting settings written into each view.json are the map mapper's
    (`mapper_config`, default sim.datagen.maps.map_mapper_config()), so a view's lifted features
    are of the kind the scenes' maps hold.
    """
    from sim.config import load_sim_config
    from sim.datagen.maps import map_mapper_config, map_sim_config
    from sim.simulator import Simulator

    cfg = req.config
    mcfg = mapper_config or map_mapper_config()
    meta = {"coordinates": cfg.coordinates, "encoder": dataclasses.asdict(mcfg.encoder),
            "sample_stride": mcfg.sample_stride, "depth_min": mcfg.depth_min, "depth_max": mcfg.depth_max}
    depth_range = (mcfg.depth_min, mcfg.depth_max)
    from llm3d_core.model.data import scene_ids_of

    scene_ids = scene_ids_of(req.data / f"{req.split}.jsonl")
    if req.scenes:
        scene_ids = scene_ids[:req.scenes]
    sim = Simulator(map_sim_config(sim_config or load_sim_config()))
    jsonl = req.data / f"{req.name}.jsonl"
    tmp = jsonl.with_suffix(".jsonl.tmp")
    counts: dict[str, int] = {}
    n_views = skipped = 0
    try:
        with tmp.open("w") as f:
            for sid in wrap(scene_ids, desc=f"{req.split} views", total=len(scene_ids)):
                path = req.data / "scenes" / sid / "scene.json"
                if not path.is_file():
                    log.warning("scene %s has no %s; skipped", sid, path)
                    skipped += 1
                    continue
                scene = sim.load(load_scene(path))
                for view in render_views(sim, scene, cfg, depth_range, mcfg.sample_stride):
                    recs = view_records(scene, view, cfg, depth_range, grid=sim.grid)
                    save_view(view, view_dir(req.data, view.view_id), meta)
                    for rec in recs:
                        f.write(json.dumps(rec) + "\n")
                        counts[rec["task"]] = counts.get(rec["task"], 0) + 1
                    n_views += 1
        tmp.replace(jsonl)
    finally:
        sim.close()
    return {"jsonl": str(jsonl), "scenes": len(scene_ids) - skipped, "views": n_views,
            "records": sum(counts.values()), "tasks": dict(sorted(counts.items()))}
