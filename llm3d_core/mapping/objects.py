"""Object proposals from the voxel map, kept stable as the map grows.

Two sources (3D-LLM section 3.2 and Chat-Scene style object-centric scenes need objects):
- instance ids fused per voxel, when the frames carry them (the simulator does): one object
  per instance id, whose id it keeps;
- otherwise geometry: on the fused surface points (the TSDF's, finer than the feature voxels),
  structural planes (floor, walls, large table tops, each holding more than a fraction of the
  points) are removed with RANSAC plane segmentation and the rest is clustered with DBSCAN
  (Open3D); each point takes the feature of the voxel it falls in.

Each update matches new proposals to the previous objects by 3D box IoU, so a stable scene keeps
its object ids (merge on overlap, no id churn). Each object carries a pooled feature (the
weighted mean of its voxels' features) and label scores from its text-aligned part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import open3d as o3d
import torch
import torch.nn.functional as F

from llm3d_core.geometry import box_iou_3d

DEFAULT_VOCABULARY = (
    "chair", "table", "sofa", "bed", "cabinet", "shelf", "lamp", "tv", "monitor", "laptop", "mug", "bottle",
    "book", "plant", "sink", "toilet", "fridge", "microwave", "box", "trash can", "desk", "door", "window",
    "pillow", "keyboard", "oven", "stove", "counter", "bag", "clock", "picture", "towel", "bowl", "cup",
)


@dataclass
class ObjectConfig:
    min_points: int = 30  # geometric clusters with fewer surface points are not objects
    min_instance_voxels: int = 3  # instances with fewer feature voxels are not objects (a mug is a few 5 cm voxels)
    background_instance_ids: list[int] = field(default_factory=lambda: [0])  # structure (floor, walls), not objects
    cluster_eps_cells: float = 2.5  # DBSCAN radius, in point spacings (cells)
    max_planes: int = 8  # RANSAC planes to try removing
    plane_min_fraction: float = 0.03  # a plane holding more than this fraction of points is structure
    plane_distance: float = 0.025  # metres, RANSAC inlier distance
    match_overlap: float = 0.5  # box intersection / smaller box volume to keep a previous object's id
    min_weight: float = 1.0  # voxels with less fusion weight are ignored
    label_temperature: float = 0.05  # softmax temperature of label scores
    vocabulary: list[str] = field(default_factory=lambda: list(DEFAULT_VOCABULARY))

    def __post_init__(self) -> None:
        if self.min_points < 1:
            raise ValueError(f"min_points must be >= 1, got {self.min_points}")
        if self.min_instance_voxels < 1:
            raise ValueError(f"min_instance_voxels must be >= 1, got {self.min_instance_voxels}")
        if not self.cluster_eps_cells > 0:
            raise ValueError(f"cluster_eps_cells must be > 0, got {self.cluster_eps_cells}")
        if not 0 < self.plane_min_fraction <= 1:
            raise ValueError(f"plane_min_fraction must be in (0, 1], got {self.plane_min_fraction}")
        if not 0 < self.match_overlap <= 1:
            raise ValueError(f"match_overlap must be in (0, 1], got {self.match_overlap}")
        if not self.label_temperature > 0:
            raise ValueError(f"label_temperature must be > 0, got {self.label_temperature}")
        if not self.vocabulary or any(not str(v).strip() for v in self.vocabulary):
            raise ValueError(f"vocabulary must be a non-empty list of names, got {self.vocabulary!r}")


@dataclass
class MapObject:
    id: int
    box_min: np.ndarray  # (3,)
    box_max: np.ndarray  # (3,)
    centroid: np.ndarray  # (3,)
    num_points: int  # points (voxels or surface points) the object was built from
    feature: np.ndarray  # (C,) pooled voxel feature
    label: str = ""
    label_scores: dict[str, float] = field(default_factory=dict)  # top labels, best first
    instance_id: int = -1  # source instance id, -1 for geometric proposals
    sample: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (S, 3) some of its points
    text_feature: np.ndarray | None = None  # (384,) unit text-space embedding (crops, or pooled voxels)

    def to_json(self) -> dict:
        return {"id": self.id, "box_min": self.box_min.tolist(), "box_max": self.box_max.tolist(),
                "centroid": self.centroid.tolist(), "num_points": self.num_points, "label": self.label,
                "label_scores": self.label_scores, "instance_id": self.instance_id}


def assign_labels(objects: list[MapObject], label_embeddings: torch.Tensor, vocabulary: list[str], temperature: float) -> None:
    """Label and top-3 label scores of each object from its text feature (softmax over the vocabulary)."""
    objects = [o for o in objects if o.text_feature is not None]
    if not objects:
        return
    text = F.normalize(torch.from_numpy(np.stack([o.text_feature for o in objects])).float(), dim=1)  # (K, 384)
    probs = torch.softmax(text @ label_embeddings.cpu().T / temperature, dim=1)  # (K, V)
    top = probs.topk(min(3, probs.shape[1]), dim=1)
    for obj, scores, ids in zip(objects, top.values, top.indices):
        obj.label_scores = {vocabulary[i]: round(float(p), 4) for p, i in zip(scores, ids)}
        obj.label = vocabulary[int(ids[0])]


def box_overlap(a_min: np.ndarray, a_max: np.ndarray, b_min: np.ndarray, b_max: np.ndarray) -> float:
    """Intersection volume over the smaller box's volume: 1 when one box holds the other.

    Used for id matching because an object that grows as more of it is seen keeps overlapping
    its earlier, smaller box fully, while its IoU with it falls.
    """
    inter = np.clip(np.minimum(a_max, b_max) - np.maximum(a_min, b_min), 0, None).prod()
    smaller = min(np.prod(a_max - a_min), np.prod(b_max - b_min))
    return float(inter / smaller) if smaller > 0 else 0.0


def remove_planes(points: np.ndarray, config: ObjectConfig, seed: int = 0) -> np.ndarray:
    """Boolean mask (N,) of points NOT on large planes."""
    keep = np.ones(len(points), dtype=bool)
    o3d.utility.random.seed(seed)  # RANSAC is random: fixed seed, repeatable proposals
    for _ in range(config.max_planes):
        idx = np.flatnonzero(keep)
        if len(idx) < 3 * config.min_points:
            break
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[idx]))
        _, inliers = cloud.segment_plane(config.plane_distance, 3, 200)
        if len(inliers) < config.plane_min_fraction * len(points):
            break
        keep[idx[np.asarray(inliers)]] = False
    return keep


def cluster_labels(points: np.ndarray, eps: float, min_points: int) -> np.ndarray:
    """DBSCAN labels (N,), -1 for noise."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    return np.asarray(cloud.cluster_dbscan(eps=eps, min_points=min_points, print_progress=False), dtype=np.int64)


class ObjectTracker:
    """Turns voxel groups into objects and keeps their ids across updates."""

    def __init__(self, config: ObjectConfig) -> None:
        self.config = config
        self.objects: list[MapObject] = []
        self._next_id = 0

    def reset(self) -> None:
        self.objects, self._next_id = [], 0

    def update(self, points: np.ndarray, features: torch.Tensor, weights: torch.Tensor, instance: np.ndarray | None,
               cell: float, sample_points: int = 200) -> list[MapObject]:
        """Recomputes objects from points (M, 3) with features (M, C) and fusion weights (M,).

        instance (M,) int: group by instance id (ids < 0 are unlabeled); None: geometric proposals.
        cell: the points' spacing (metres), for box extents and the clustering radius.
        """
        c = self.config
        keep = weights.cpu().numpy() >= c.min_weight
        groups: list[tuple[np.ndarray, int]] = []  # (point indices, instance id)
        if instance is not None:
            labeled = keep & (instance >= 0) & ~np.isin(instance, c.background_instance_ids)
            for inst in np.unique(instance[labeled]):
                idx = np.flatnonzero(labeled & (instance == inst))
                if len(idx) >= c.min_instance_voxels:
                    groups.append((idx, int(inst)))
        else:
            idx_all = np.flatnonzero(keep)
            idx_obj = idx_all[remove_planes(points[idx_all], c)]
            labels = cluster_labels(points[idx_obj], c.cluster_eps_cells * cell, min_points=5)
            for lab in range(labels.max() + 1 if len(labels) else 0):
                idx = idx_obj[labels == lab]
                if len(idx) >= c.min_points:
                    groups.append((idx, -1))

        proposals = [self._make_object(idx, inst, points, features, weights, cell, sample_points) for idx, inst in groups]
        self.objects = self._match(proposals)
        return self.objects

    def _make_object(self, idx: np.ndarray, inst: int, points: np.ndarray, features: torch.Tensor,
                     weights: torch.Tensor, cell: float, sample_points: int) -> MapObject:
        pts = points[idx]
        step = max(1, len(pts) // sample_points)
        w = weights[torch.from_numpy(idx).to(weights.device)].float()  # (K,)
        pooled = (features[torch.from_numpy(idx).to(features.device)].float() * w[:, None]).sum(0) / w.sum()  # (C,)
        half = cell / 2
        return MapObject(id=-1, box_min=pts.min(0) - half, box_max=pts.max(0) + half, centroid=pts.mean(0),
                         num_points=len(idx), feature=pooled.cpu().numpy(), instance_id=inst,
                         sample=pts[::step][:sample_points].copy())

    def _match(self, proposals: list[MapObject]) -> list[MapObject]:
        """Gives each proposal the id of the previous object it overlaps most (greedy), else a new id.

        Pairs are ranked by box overlap, then IoU, so of several fragments inside one old box the
        one most like it keeps the id.
        """
        by_instance = {o.instance_id: o.id for o in self.objects if o.instance_id >= 0}
        pairs = []
        for i, p in enumerate(proposals):
            if p.instance_id >= 0:
                continue
            for o in self.objects:
                overlap = box_overlap(p.box_min, p.box_max, o.box_min, o.box_max)
                if overlap >= self.config.match_overlap:
                    pairs.append((overlap, box_iou_3d(np.concatenate([p.box_min, p.box_max]), np.concatenate([o.box_min, o.box_max])), i, o.id))
        taken_ids, assigned = set(), {}
        for _, _, i, oid in sorted(pairs, reverse=True):
            if i not in assigned and oid not in taken_ids:
                assigned[i] = oid
                taken_ids.add(oid)
        # New ids come from a counter kept above every id in use, so an id is never reused.
        used = [o.id for o in self.objects] + [p.instance_id for p in proposals]
        self._next_id = max([self._next_id, *(u + 1 for u in used)])
        for i, p in enumerate(proposals):
            if p.instance_id >= 0:
                p.id = by_instance.get(p.instance_id, p.instance_id)
            elif i in assigned:
                p.id = assigned[i]
            else:
                p.id, self._next_id = self._next_id, self._next_id + 1
        return sorted(proposals, key=lambda o: o.id)

    def state(self) -> dict:
        return {"next_id": self._next_id, "objects": [o.to_json() for o in self.objects]}

    def load_state(self, state: dict, features: list[np.ndarray], samples: list[np.ndarray],
                   text_features: list[np.ndarray | None]) -> None:
        self._next_id = int(state.get("next_id", 0))
        self.objects = []
        for data, feat, sample, text in zip(state.get("objects", []), features, samples, text_features):
            self.objects.append(MapObject(id=int(data["id"]), box_min=np.array(data["box_min"]), box_max=np.array(data["box_max"]),
                                          centroid=np.array(data["centroid"]), num_points=int(data["num_points"]),
                                          feature=feat, label=data["label"], label_scores=dict(data["label_scores"]),
                                          instance_id=int(data["instance_id"]), sample=sample, text_feature=text))
