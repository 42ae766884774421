"""The scene as the 3D-LLM sees it: sampled map points with features, bounds, and object tokens.

3D-LLM (section 3.2) samples N points with their fused features from the 3D map; Chat-Scene
(Huang et al. 2024) represents a scene by its object proposals. `SceneInput` holds both, so
either encoder can run on one cached file per scene (`scene_cache/<scene_id>.safetensors`), and
training never re-maps a scene.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from llm3d_core.model.location_tokens import SceneBounds

if TYPE_CHECKING:
    from llm3d_core.mapping.mapper import FeatureFusionMapper

SCENE_CACHE_FORMAT = 2  # 2: point and object colours


class EmptySceneError(ValueError):
    """The map holds no points (nothing fused yet); a 3D-LLM answer needs a scene."""


class SceneCacheError(RuntimeError):
    """A scene cache file is missing or corrupt; the message names it."""


@dataclass
class SceneInput:
    points: torch.Tensor  # (N, 3) float32, map frame
    features: torch.Tensor  # (N, D) float32
    bounds: torch.Tensor  # (2, 3) float32: lo, hi
    object_features: torch.Tensor  # (K, D)
    object_text: torch.Tensor  # (K, T) text-space features (zeros when absent)
    object_boxes: torch.Tensor  # (K, 6) min xyz, max xyz
    object_ids: torch.Tensor  # (K,) int64
    object_labels: list[str]
    colors: torch.Tensor | None = None  # (N, 3) float32 in [0, 1]; None = grey
    object_colors: torch.Tensor | None = None  # (K, 3) median object colour in [0, 1]; None = grey

    def __post_init__(self) -> None:
        if self.points.ndim != 2 or self.points.shape[1] != 3 or self.points.shape[0] == 0:
            raise EmptySceneError(f"the scene has no points (points shape {tuple(self.points.shape)}); "
                                  "map the scene first")
        if self.features.shape[0] != self.points.shape[0]:
            raise ValueError(f"{self.points.shape[0]} points but {self.features.shape[0]} feature rows")
        # Colour matters to the questions people ask ("the red chair"); the 2D features at stride 32
        # keep little of it, so the fused voxel colour travels beside them.
        if self.colors is None:
            self.colors = torch.full((self.points.shape[0], 3), 0.5)
        if self.object_colors is None:
            self.object_colors = torch.full((self.object_ids.shape[0], 3), 0.5)
        if self.colors.shape != (self.points.shape[0], 3) or self.object_colors.shape != (self.object_ids.shape[0], 3):
            raise ValueError(f"colors {tuple(self.colors.shape)} / object_colors {tuple(self.object_colors.shape)} "
                             f"do not match {self.points.shape[0]} points / {self.object_ids.shape[0]} objects")

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def scene_bounds(self) -> SceneBounds:
        b = self.bounds.double().numpy()
        return SceneBounds(b[0], b[1])

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {"points": self.points, "features": self.features, "bounds": self.bounds,
                "object_features": self.object_features, "object_text": self.object_text,
                "object_boxes": self.object_boxes, "object_ids": self.object_ids, "colors": self.colors,
                "object_colors": self.object_colors}

    def save(self, path: str | Path) -> Path:
        """Writes one safetensors file (labels in its metadata), atomically."""
        import os

        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tensors = {k: v.contiguous() for k, v in self.to_tensors().items()}
        save_file(tensors, str(tmp), metadata={"format": str(SCENE_CACHE_FORMAT),
                                                "object_labels": json.dumps(self.object_labels)})
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SceneInput":
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                t = {k: f.get_tensor(k) for k in f.keys()}
        except (FileNotFoundError, SafetensorError, OSError) as err:
            raise SceneCacheError(f"scene cache {path} is missing or corrupt: {err}") from err
        if meta.get("format") != str(SCENE_CACHE_FORMAT):
            raise SceneCacheError(f"scene cache {path}: format {meta.get('format')!r}, expected {SCENE_CACHE_FORMAT}")
        try:
            return cls(points=t["points"], features=t["features"], bounds=t["bounds"],
                       object_features=t["object_features"], object_text=t["object_text"],
                       object_boxes=t["object_boxes"], object_ids=t["object_ids"],
                       object_labels=json.loads(meta.get("object_labels", "[]")), colors=t["colors"],
                       object_colors=t["object_colors"])
        except KeyError as err:
            raise SceneCacheError(f"scene cache {path} lacks tensor {err}") from err


def sample_indices(points: np.ndarray, num_points: int, rng: np.random.Generator, objects: list,
                   object_points: int = 0) -> np.ndarray:
    """(N,) indices into points (M, 3): up to `object_points` drawn from inside each object's box
    first (without replacement), the rest uniform (with replacement when M < N)."""
    picked = []
    if object_points > 0:
        for o in objects:
            inside = np.flatnonzero(np.all((points >= o.box_min) & (points <= o.box_max), axis=1))
            if len(inside):
                picked.append(rng.choice(inside, min(len(inside), object_points), replace=False))
    first = np.unique(np.concatenate(picked))[:num_points] if picked else np.zeros(0, np.int64)
    rest = num_points - len(first)
    return np.concatenate([first, rng.choice(len(points), rest, replace=len(points) < rest)]).astype(np.int64)


def scene_from_arrays(points: np.ndarray, features: np.ndarray, num_points: int, seed: int = 0,
                      objects: list | None = None, text_dim: int = 384, margin: float = 0.1,
                      colors: np.ndarray | None = None, object_colors: np.ndarray | None = None,
                      object_points: int = 0) -> SceneInput:
    """Samples `num_points` of (M, 3) points + (M, D) features + (M, 3) colours (with replacement when
    M < N); with object_points, up to that many inside each object's box first (sample_indices)."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    features = np.asarray(features, dtype=np.float32)
    colors = np.full((len(points), 3), 0.5, np.float32) if colors is None else np.asarray(colors, np.float32)
    if len(points) == 0:
        raise EmptySceneError("the map holds no points yet (nothing fused); map the scene first")
    rng = np.random.default_rng(seed)
    objects = objects or []
    idx = sample_indices(points, num_points, rng, objects, object_points)  # (N,)
    extent = [points] + [np.stack([o.box_min, o.box_max]) for o in objects]
    bounds = SceneBounds.from_points(np.concatenate(extent), margin)
    dim = features.shape[1]
    if objects:
        obj_feat = np.stack([np.asarray(o.feature, dtype=np.float32)[:dim] for o in objects])  # (K, D)
        obj_text = np.stack([np.asarray(o.text_feature, dtype=np.float32) if o.text_feature is not None
                             else np.zeros(text_dim, np.float32) for o in objects])  # (K, T)
        obj_box = np.stack([np.concatenate([o.box_min, o.box_max]) for o in objects]).astype(np.float32)  # (K, 6)
        obj_ids = np.array([o.id for o in objects], dtype=np.int64)
    else:
        obj_feat, obj_text = np.zeros((0, dim), np.float32), np.zeros((0, text_dim), np.float32)
        obj_box, obj_ids = np.zeros((0, 6), np.float32), np.zeros(0, np.int64)
    obj_col = (np.full((len(obj_ids), 3), 0.5, np.float32) if object_colors is None
               else np.asarray(object_colors, np.float32).reshape(len(obj_ids), 3))
    return SceneInput(points=torch.from_numpy(points[idx]), features=torch.from_numpy(features[idx]),
                      bounds=torch.from_numpy(bounds.as_array().astype(np.float32)),
                      object_features=torch.from_numpy(obj_feat), object_text=torch.from_numpy(obj_text),
                      object_boxes=torch.from_numpy(obj_box), object_ids=torch.from_numpy(obj_ids),
                      object_labels=[o.label for o in objects], colors=torch.from_numpy(colors[idx]),
                      object_colors=torch.from_numpy(obj_col))


def scene_from_mapper(mapper: "FeatureFusionMapper", num_points: int, seed: int = 0, object_points: int = 0) -> SceneInput:
    """Samples the mapper's feature voxels and collects its objects (3D-LLM sec. 3.2; Chat-Scene)."""
    slots = mapper.voxels.active_slots()
    if len(slots) == 0:
        raise EmptySceneError("the map holds no voxels yet (nothing fused); map the scene first")
    points = mapper.voxels.centers(slots).numpy()  # (M, 3)
    features = mapper.voxels.features[slots].float().cpu().numpy()  # (M, D)
    colors = mapper.voxels.colors[slots].float().cpu().numpy()  # (M, 3)
    text_dim = mapper.text_dim or 384
    objects = list(mapper.objects)
    return scene_from_arrays(points, features, num_points, seed, objects, text_dim, colors=colors,
                             object_colors=object_colors(mapper, objects), object_points=object_points)


def object_colors(mapper: "FeatureFusionMapper", objects: list) -> np.ndarray:
    """(K, 3) median voxel colour of each object's sample points (grey where none is found).

    The median, not the mean: shading and a few voxels of the support surface at the object's
    border should not pull the colour a person would name.
    """
    out = np.full((len(objects), 3), 0.5, np.float32)
    for k, obj in enumerate(objects):
        if len(obj.sample) == 0:
            continue
        slots, found = mapper.voxels.lookup(torch.as_tensor(np.asarray(obj.sample), dtype=torch.float32), neighbors=True)
        if bool(found.any()):
            out[k] = mapper.voxels.colors[slots[found]].float().median(dim=0).values.cpu().numpy()
    return out


def load_map_scene(map_dir: str | Path, num_points: int, seed: int = 0, device: str = "cpu",
                   object_points: int = 0) -> SceneInput:
    from llm3d_core.mapping.mapper import FeatureFusionMapper

    return scene_from_mapper(FeatureFusionMapper.load(map_dir, device=device), num_points, seed, object_points)


def collate_scenes(scenes: list[SceneInput], max_objects: int) -> dict[str, torch.Tensor]:
    """Stacks scenes into a batch; objects are padded/truncated to `max_objects` with a mask."""
    dims = {s.feature_dim for s in scenes}
    counts = {s.points.shape[0] for s in scenes}
    if len(dims) != 1 or len(counts) != 1:
        raise ValueError(f"scenes in one batch must share point count and feature dim, got {counts} / {dims}")
    b, d = len(scenes), dims.pop()
    t_dim = max(int(s.object_text.shape[1]) for s in scenes)
    obj_feat = torch.zeros(b, max_objects, d)  # (B, K, D)
    obj_text = torch.zeros(b, max_objects, t_dim)  # (B, K, T)
    obj_box = torch.zeros(b, max_objects, 6)  # (B, K, 6)
    obj_col = torch.full((b, max_objects, 3), 0.5)  # (B, K, 3)
    obj_mask = torch.zeros(b, max_objects, dtype=torch.bool)  # (B, K)
    for i, s in enumerate(scenes):
        k = min(len(s.object_ids), max_objects)
        obj_feat[i, :k] = s.object_features[:k]
        obj_col[i, :k] = s.object_colors[:k]
        obj_text[i, :k, : s.object_text.shape[1]] = s.object_text[:k]
        obj_box[i, :k] = s.object_boxes[:k]
        obj_mask[i, :k] = True
    return {"points": torch.stack([s.points for s in scenes]),  # (B, N, 3)
            "features": torch.stack([s.features for s in scenes]),  # (B, N, D)
            "colors": torch.stack([s.colors for s in scenes]),  # (B, N, 3)
            "object_colors": obj_col,
            "bounds": torch.stack([s.bounds for s in scenes]),  # (B, 2, 3)
            "object_features": obj_feat, "object_text": obj_text, "object_boxes": obj_box, "object_mask": obj_mask}
