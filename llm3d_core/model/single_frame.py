"""One model for 2D and 3D: a single RGB-D view lifted to a SceneInput (UniVLG, Jain et al., ICML 2025, sec. 3).

UniVLG runs 2D images through its 3D model by lifting them with depth into a 3D point set in
camera coordinates, so the same encoder and heads serve a single view and a reconstructed scene.
Here a posed RGB-D frame (or an RGB image with a depth map) is encoded by the mapper's own 2D
encoder and lifted with the mapper's own functions (same stride, depth range and bilinear
feature sampling), so a frame's point features live in the same space as a fused map's, and
the 3D-LLM's scene encoders and the mask head run on it unchanged: a robot can ask about what
it sees now, before any map exists.

Coordinates: "camera" (default, UniVLG's choice: no pose needed, x right, y down, z forward) or
"world" (the frame's pose applied, for answers in the map frame, and for fusing several frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from llm3d_core.geometry import RGBDFrame
from llm3d_core.model.scene import SceneInput, scene_from_arrays

if TYPE_CHECKING:
    from llm3d_core.encoders.base import ImageEncoder
    from llm3d_core.mapping.mapper import MapperConfig

COORDINATES = ("camera", "world")


@dataclass
class LiftedFrame:
    """The valid-depth samples of one frame."""

    points: np.ndarray  # (M, 3) float32, camera or world frame
    features: np.ndarray  # (M, C) float32, the 2D encoder's features at the samples
    colors: np.ndarray  # (M, 3) float32 in [0, 1]
    instance: np.ndarray | None  # (M,) int64 instance ids, None when the frame has none
    spacing: float  # metres between neighbouring samples at the median depth


def lift_frame(frame: RGBDFrame, feature_map: torch.Tensor, stride: int = 8, depth_min: float = 0.1,
               depth_max: float = 5.0, coordinates: str = "camera") -> LiftedFrame:
    """Back-projects one frame's pixels (every `stride`) with valid depth, with their 2D features.

    feature_map: the encoder's (C, h, w) output for frame.rgb. Uses the mapper's geometry and
    feature sampling (llm3d_core.geometry, mapping.taps.sample_features), so a frame and a map
    agree on what a point's feature means. Raises FrameError for a malformed frame.
    """
    from llm3d_core.geometry import backproject, pixel_grid, transform_points, validate_frame
    from llm3d_core.mapping.taps import sample_features

    if coordinates not in COORDINATES:
        raise ValueError(f"coordinates must be one of {COORDINATES}, got {coordinates!r}")
    depth_m, K, T = validate_frame(frame)
    depth_m[(depth_m < depth_min) | (depth_m > depth_max)] = 0.0
    h, w = depth_m.shape
    v, u = pixel_grid(h, w, stride)
    valid = depth_m[v, u] > 0
    v, u = v[valid], u[valid]
    points = backproject(depth_m, K, v, u)  # (M, 3) camera frame
    spacing = float(np.median(points[:, 2])) * stride / float(K[0, 0]) if len(points) else 0.0
    if coordinates == "world":
        points = transform_points(T, points)
    return LiftedFrame(points=points.astype(np.float32),
                       features=sample_features(feature_map, v, u, h, w).float().cpu().numpy(),  # (M, C)
                       colors=frame.rgb[v, u].astype(np.float32) / 255.0,  # (M, 3)
                       instance=None if frame.instance_ids is None else frame.instance_ids[v, u].astype(np.int64),
                       spacing=spacing)


def frame_objects(lifted: LiftedFrame, text_dim: int, object_config: object | None = None,
                  label: bool = True) -> list:
    """Objects of one view from its instance ids (one per id, ids kept; background ids left out).

    The mapper's ObjectTracker groups the points as it groups a map's voxels; each object's text
    feature is its pooled text-aligned slice (the map's fallback when there are no crops), and
    labels come from the mapper's vocabulary when `label` and the features are text-aligned.
    """
    import torch.nn.functional as F

    from llm3d_core.mapping.objects import ObjectConfig, ObjectTracker, assign_labels

    if lifted.instance is None or len(lifted.points) == 0:
        return []
    cfg = object_config or ObjectConfig()
    # The sample spacing plays the voxel size's role: boxes are padded by half of it, as the map's by half a voxel.
    weights = torch.ones(len(lifted.points))  # one observation each: every point passes min_weight
    objects = ObjectTracker(cfg).update(lifted.points, torch.from_numpy(lifted.features), weights, lifted.instance,
                                        lifted.spacing, sample_points=200)
    if text_dim:
        for obj in objects:
            obj.text_feature = F.normalize(torch.from_numpy(obj.feature[-text_dim:]).float(), dim=0).numpy()
        if label and objects:
            from llm3d_core.encoders.text import get_text_encoder

            vocabulary = list(cfg.vocabulary)
            assign_labels(objects, get_text_encoder("cpu").encode(vocabulary), vocabulary, cfg.label_temperature)
    return objects


def scene_from_frame(frame: RGBDFrame, encoder: "ImageEncoder", num_points: int, coordinates: str = "camera",
                     stride: int = 8, depth_min: float = 0.1, depth_max: float = 5.0, seed: int = 0,
                     objects: bool = True, label_objects: bool = True,
                     feature_map: torch.Tensor | None = None) -> SceneInput:
    """A SceneInput of one posed RGB-D frame (UniVLG sec. 3: 2D views as 3D point sets).

    encoder: the mapper's 2D encoder (`FeatureFusionMapper.encoder`, or build_image_encoder with
    the map's EncoderConfig) so features match the model's feature_dim. Objects come from the
    frame's instance ids when it has them (simulator frames), else the scene has none. Raises
    EmptySceneError when no pixel has valid depth.
    """
    fmap = encoder.encode(frame.rgb) if feature_map is None else feature_map  # (C, h, w)
    lifted = lift_frame(frame, fmap, stride, depth_min, depth_max, coordinates)
    objs = frame_objects(lifted, encoder.text_dim, label=label_objects) if objects else []
    return scene_from_arrays(lifted.points, lifted.features, num_points, seed, objs,
                             text_dim=encoder.text_dim or 384, colors=lifted.colors,
                             object_colors=_median_colors(lifted, objs))


def scene_from_rgbd(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, encoder: "ImageEncoder", num_points: int,
                    depth_scale: float = 1000.0, **kwargs: object) -> SceneInput:
    """An RGB image (H, W, 3) uint8 + depth map (H, W) (uint16 / depth_scale, or float metres) + intrinsics
    (3, 3), without a pose: lifted in camera coordinates (see scene_from_frame for the keywords)."""
    frame = RGBDFrame(rgb=rgb, depth=depth, K=np.asarray(K, dtype=np.float64), T_world_camera=np.eye(4),
                      depth_scale=depth_scale)
    return scene_from_frame(frame, encoder, num_points, **kwargs)  # type: ignore[arg-type]


def scene_from_frames(frames: list[RGBDFrame], encoder: "ImageEncoder", num_points: int, stride: int = 8,
                      depth_min: float = 0.1, depth_max: float = 5.0, seed: int = 0) -> SceneInput:
    """Several posed frames (e.g. chosen by frame_selection) lifted into the world frame and pooled.

    Without fusion: a quick scene from a handful of views (UniVLG's multi-view input); a full map
    (FeatureFusionMapper) averages features per voxel instead. Objects are not proposed here.
    """
    if not frames:
        raise ValueError("scene_from_frames needs at least one frame")
    parts = [lift_frame(f, encoder.encode(f.rgb), stride, depth_min, depth_max, "world") for f in frames]
    return scene_from_arrays(np.concatenate([p.points for p in parts]), np.concatenate([p.features for p in parts]),
                             num_points, seed, [], text_dim=encoder.text_dim or 384,
                             colors=np.concatenate([p.colors for p in parts]))


def scene_from_mapper_config(frame: RGBDFrame, encoder: "ImageEncoder", config: "MapperConfig",
                             num_points: int, coordinates: str = "camera", seed: int = 0) -> SceneInput:
    """scene_from_frame with the stride and depth range of a mapper's config (what the model was trained on)."""
    return scene_from_frame(frame, encoder, num_points, coordinates, config.sample_stride, config.depth_min,
                            config.depth_max, seed)


def _median_colors(lifted: LiftedFrame, objects: list) -> np.ndarray | None:
    """(K, 3) median colour of each object's points (the map uses the median too: robust to shading)."""
    if not objects:
        return None
    out = np.full((len(objects), 3), 0.5, np.float32)
    for k, obj in enumerate(objects):
        sel = lifted.instance == obj.instance_id
        if sel.any():
            out[k] = np.median(lifted.colors[sel], axis=0)
    return out
