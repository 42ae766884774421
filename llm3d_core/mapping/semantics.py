"""Object semantics from multi-view crops: what each object is, in the text-embedding space.

Dense per-pixel features (the fused voxel features) blur small objects into their surroundings:
at stride 32 a coffee mug is a fraction of one feature cell. As OpenMask3D (Takmaz et al. 2023)
does for 3D instance masks, each object is instead looked at in the few keyframes where it is
most visible: its points are projected, occlusion-checked against the keyframe depth, the image
crop around them (with context) is classified as a whole, and the crops' text-space embeddings
are averaged. Keyframes are kept downsampled in a bounded store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from llm3d_core.mapping.objects import MapObject


@dataclass
class CropConfig:
    enabled: bool = True  # compute object features from image crops (needs a text-aligned encoder)
    keyframe_every: int = 5  # keep every N-th frame as a keyframe (doubles when the store thins itself)
    max_keyframes: int = 80  # bound on stored keyframes; when full, every second one is dropped
    image_scale: float = 0.5  # keyframes are stored downscaled by this factor
    views_per_object: int = 3  # crops averaged per object
    crop_margin: float = 0.25  # context around the object's projected box, as a fraction of its size
    min_crop_pixels: int = 12  # crops smaller than this (side, stored resolution) are not used
    depth_tolerance: float = 0.1  # metres: a projected point is visible when it is this close to the keyframe depth
    sample_points: int = 200  # object points kept for projection

    def __post_init__(self) -> None:
        if self.keyframe_every < 1:
            raise ValueError(f"keyframe_every must be >= 1, got {self.keyframe_every}")
        if self.max_keyframes < 2:
            raise ValueError(f"max_keyframes must be >= 2, got {self.max_keyframes}")
        if not 0 < self.image_scale <= 1:
            raise ValueError(f"image_scale must be in (0, 1], got {self.image_scale}")
        if self.views_per_object < 1:
            raise ValueError(f"views_per_object must be >= 1, got {self.views_per_object}")
        if not self.crop_margin >= 0:
            raise ValueError(f"crop_margin must be >= 0, got {self.crop_margin}")
        if not self.depth_tolerance > 0:
            raise ValueError(f"depth_tolerance must be > 0, got {self.depth_tolerance}")
        if self.sample_points < 1:
            raise ValueError(f"sample_points must be >= 1, got {self.sample_points}")


@dataclass
class Keyframe:
    rgb: np.ndarray  # (h, w, 3) uint8, downscaled
    depth: np.ndarray  # (h, w) float32 metres, 0 = invalid
    K: np.ndarray  # (3, 3) for the downscaled image
    T_world_camera: np.ndarray  # (4, 4)
    timestamp: float


class KeyframeStore:
    """Bounded keyframes: every `keyframe_every`-th frame; when full, every second one goes and
    the interval doubles, so the store always spans the whole run evenly."""

    def __init__(self, config: CropConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.keyframes: list[Keyframe] = []
        self.every = self.config.keyframe_every
        self._seen = 0
        self.size: tuple[int, int] | None = None  # (width, height) of every stored keyframe

    def offer(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray, timestamp: float) -> bool:
        """Considers a validated frame; returns whether it was kept.

        Every keyframe is stored at one size, the first keyframe's scaled size: a camera that
        changes resolution mid-run (another driver profile, one odd frame) keeps the store
        stackable for saving. K is scaled per axis, so projection stays exact even where the
        aspect ratio differs.
        """
        keep = self._seen % self.every == 0
        self._seen += 1
        if not keep:
            return False
        h, w = depth_m.shape
        if self.size is None:
            s = self.config.image_scale
            self.size = (max(1, round(w * s)), max(1, round(h * s)))  # (width, height)
        size = self.size
        small_rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        small_depth = np.asarray(Image.fromarray(depth_m).resize(size, Image.NEAREST))  # no mixing across edges
        K_small = K.copy()
        K_small[0] *= size[0] / w
        K_small[1] *= size[1] / h
        self.keyframes.append(Keyframe(small_rgb, small_depth.astype(np.float32), K_small, T_world_camera.copy(), timestamp))
        if len(self.keyframes) > self.config.max_keyframes:
            self.keyframes = self.keyframes[::2]
            self.every *= 2
        return True

    def state(self) -> dict[str, np.ndarray]:
        if not self.keyframes:
            return {}
        return {"rgb": np.stack([k.rgb for k in self.keyframes]), "depth": np.stack([k.depth for k in self.keyframes]),
                "K": np.stack([k.K for k in self.keyframes]), "T": np.stack([k.T_world_camera for k in self.keyframes]),
                "t": np.array([k.timestamp for k in self.keyframes]), "every": np.array(self.every),
                "seen": np.array(self._seen)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.reset()
        if not state:
            return
        self.keyframes = [Keyframe(r, d, k, T, float(t)) for r, d, k, T, t in
                          zip(state["rgb"], state["depth"], state["K"], state["T"], state["t"])]
        self.every, self._seen = int(state["every"]), int(state["seen"])
        if self.keyframes:
            h, w = self.keyframes[0].depth.shape
            self.size = (w, h)


def visible_box(points: np.ndarray, kf: Keyframe, depth_tolerance: float) -> tuple[int, np.ndarray | None]:
    """Visible points of (P, 3) world `points` in a keyframe, and their pixel box [u0, v0, u1, v1]."""
    T_cw = np.linalg.inv(kf.T_world_camera)
    cam = points @ T_cw[:3, :3].T + T_cw[:3, 3]  # (P, 3)
    z = cam[:, 2]
    front = z > 1e-3
    if not front.any():
        return 0, None
    uv = cam[front, :2] / z[front, None] * np.diag(kf.K)[:2] + kf.K[:2, 2]  # (P', 2)
    h, w = kf.depth.shape
    u, v = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    u, v, zf = u[inside], v[inside], z[front][inside]
    measured = kf.depth[v, u]
    # Visible: the keyframe saw a surface at this point's depth (not something in front of it).
    visible = (measured > 0) & (np.abs(measured - zf) < depth_tolerance)
    if not visible.any():
        return 0, None
    return int(visible.sum()), np.array([u[visible].min(), v[visible].min(), u[visible].max() + 1, v[visible].max() + 1])


def object_crops(points: np.ndarray, keyframes: list[Keyframe], config: CropConfig) -> list[np.ndarray]:
    """Crops (with context margin) of the object in the keyframes where most of it is visible."""
    scored = []
    for kf in keyframes:
        count, box = visible_box(points, kf, config.depth_tolerance)
        if box is not None and min(box[2] - box[0], box[3] - box[1]) >= config.min_crop_pixels:
            scored.append((count, box, kf))
    scored.sort(key=lambda item: -item[0])
    crops = []
    for _, (u0, v0, u1, v1), kf in scored[: config.views_per_object]:
        h, w = kf.depth.shape
        mu, mv = config.crop_margin * (u1 - u0), config.crop_margin * (v1 - v0)
        a, b = int(max(0, u0 - mu)), int(max(0, v0 - mv))
        c, d = int(min(w, u1 + mu)), int(min(h, v1 + mv))
        crops.append(kf.rgb[b:d, a:c])
    return crops


class ObjectSemantics:
    """Computes and caches each object's text-space embedding from crops; falls back to the
    pooled voxel text feature where no crop is available."""

    def __init__(self, config: CropConfig) -> None:
        self.config = config
        self._cache: dict[int, tuple[tuple, np.ndarray]] = {}  # id -> (box key, embedding)

    def reset(self) -> None:
        self._cache.clear()

    @staticmethod
    def _key(obj: MapObject) -> tuple:
        return tuple(np.round(np.concatenate([obj.box_min, obj.box_max]), 2))

    def remember(self, objects: list[MapObject]) -> None:
        """Takes the objects' current text features as computed (e.g. after loading a map)."""
        for obj in objects:
            if obj.text_feature is not None:
                self._cache[obj.id] = (self._key(obj), obj.text_feature)

    def covers(self, objects: list[MapObject]) -> bool:
        """Whether every object's crops are computed for its current box."""
        return all(self._cache.get(o.id, ((),))[0] == self._key(o) for o in objects)

    def refresh(self, objects: list[MapObject], points: dict[int, np.ndarray], keyframes: list[Keyframe],
                encoder, text_dim: int, compute: bool = True) -> None:
        """Sets `text_feature` on every object from cached crops; with `compute`, new or changed
        objects get new crops, otherwise they fall back to their pooled voxel text feature."""
        todo, all_crops, owners = [], [], []
        for obj in objects:
            key = self._key(obj)
            cached = self._cache.get(obj.id)
            if cached is not None and cached[0] == key:
                obj.text_feature = cached[1]
                continue
            crops = object_crops(points[obj.id], keyframes, self.config) if compute and obj.id in points else []
            if crops:
                todo.append((obj, key))
                all_crops += crops
                owners += [len(todo) - 1] * len(crops)
            else:
                obj.text_feature = _unit(obj.feature[-text_dim:])
                if compute:  # no view of it: remember the fallback so it is not searched again
                    self._cache[obj.id] = (key, obj.text_feature)
        if not all_crops:
            return
        emb = encoder.embed_crops(all_crops)  # (N, 384)
        owner = torch.tensor(owners)
        sums = torch.zeros(len(todo), emb.shape[1]).index_add_(0, owner, emb.cpu())  # (K, 384)
        for (obj, key), vec in zip(todo, F.normalize(sums, dim=1).numpy()):
            obj.text_feature = vec
            self._cache[obj.id] = (key, vec)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.linalg.norm(x)), 1e-12)
