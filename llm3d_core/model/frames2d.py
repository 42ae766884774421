"""The 2D baseline's scene input: per-frame image features without 3D fusion.

3D-LLM (Hong et al. 2023, sec. 5) compares against 2D vision-language models that see the scene
as a set of images rather than as a 3D feature field. Here the comparison is made with the same
LLM and the same scene encoders: instead of map points with fused features and 3D positions,
the scene prefix is built from K keyframes of the exploration, each image's 2D feature map
(the mapper's own encoder, so features are identical in kind) average-pooled to a g x g grid.

What the 2D input holds, as a `SceneInput` either encoder accepts:

- tokens: K * g * g pooled features (D, the encoder's channels: visual first, text-aligned last),
  with the pooled pixel colour of each cell;
- positions: none. Every token sits at the centre of the scene bounds (the points encoder's
  position embedding is then constant) and every object box is the zero-size box there (the
  objects encoder's box embedding is constant). No depth, pose or lifting is used;
- bounds: the 3D map's bounds. They are the frame the location tokens are decoded in, so the
  2D model's boxes land in the same coordinates as the truth and are scored alike; they are the
  only 3D quantity the 2D baseline receives (a robot knows roughly how big the place it drove
  around is from odometry).

The object-token slots carry frames, not objects: `object_ids` count 0..K*g*g-1 and the labels
are empty, so nothing downstream can mistake them for map objects.

The frames are the map's keyframes (the mapper keeps them at half resolution, evenly spread over
the run, and saves them with the map), so training (`model.scene_input: frames2d`, caches in
`DATA/scene_cache_frames2d_g<grid>/`) and the benchmark build the 2D input the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from llm3d_core.encoders import SavedEncoder
from llm3d_core.model.scene import SceneInput

if TYPE_CHECKING:
    from llm3d_core.encoders.base import ImageEncoder


@dataclass
class FrameTokens:
    """Collects pooled 2D features of fused frames; `scene_input` turns K of them into a SceneInput.

    Fields:
        grid: each frame's feature map is average-pooled to grid x grid cells (tokens per frame).
        text_dim: trailing text-aligned channels of the features (the encoder's text_dim; 0 = none).
    """

    grid: int = 2
    text_dim: int = 384
    features: list[np.ndarray] = field(default_factory=list)  # per frame (g*g, D)
    colors: list[np.ndarray] = field(default_factory=list)  # per frame (g*g, 3) in [0, 1]

    def __post_init__(self) -> None:
        if self.grid < 1:
            raise ValueError(f"grid must be >= 1, got {self.grid}")
        if self.text_dim < 0:
            raise ValueError(f"text_dim must be >= 0, got {self.text_dim}")

    def __len__(self) -> int:
        return len(self.features)

    def add(self, rgb: np.ndarray, feature_map: torch.Tensor) -> None:
        """One frame: uint8 (H, W, 3) image and its (C, h, w) feature map."""
        g = self.grid
        pooled = F.adaptive_avg_pool2d(feature_map.detach().float().cpu()[None], g)[0]  # (C, g, g)
        self.features.append(pooled.flatten(1).T.numpy().copy())  # (g*g, C)
        image = torch.from_numpy(np.require(rgb, requirements=["C", "W"])).permute(2, 0, 1).float()[None] / 255.0  # (1, 3, H, W)
        self.colors.append(F.adaptive_avg_pool2d(image, g)[0].flatten(1).T.numpy().copy())  # (g*g, 3)

    def scene_input(self, bounds: np.ndarray, num_points: int, max_tokens: int, seed: int = 0) -> SceneInput:
        """K evenly spaced frames (K * grid^2 <= max_tokens) as a position-free SceneInput.

        bounds: (2, 3) lo, hi of the frame the location tokens are decoded in (the 3D map's).
        num_points: rows the points encoder samples (tokens repeated, with a fixed seed, to fill them).
        """
        per_frame = self.grid * self.grid
        if not self.features:
            raise ValueError("no frames collected: the 2D baseline needs at least one fused frame")
        if max_tokens < per_frame:
            raise ValueError(f"max_tokens={max_tokens} cannot hold one frame of {per_frame} tokens (grid {self.grid})")
        k = min(len(self.features), max_tokens // per_frame)
        idx = np.linspace(0, len(self.features) - 1, k).round().astype(int)  # spread over the exploration
        feats = np.concatenate([self.features[i] for i in idx]).astype(np.float32)  # (T, D), T = k*g*g
        cols = np.concatenate([self.colors[i] for i in idx]).astype(np.float32)  # (T, 3)
        bounds = np.asarray(bounds, dtype=np.float32).reshape(2, 3)
        centre = bounds.mean(axis=0)  # (3,): the one place every token "is"
        n_tok, dim = feats.shape
        rng = np.random.default_rng(seed)
        rows = rng.choice(n_tok, num_points, replace=n_tok < num_points)  # (N,)
        if self.text_dim:
            text = feats[:, -self.text_dim:]
            text = text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-8)  # (T, text_dim) unit
        else:
            text = np.zeros((n_tok, 384), np.float32)
        boxes = np.tile(np.concatenate([centre, centre])[None], (n_tok, 1))  # (T, 6) zero-size
        return SceneInput(points=torch.from_numpy(np.tile(centre[None], (num_points, 1))),
                          features=torch.from_numpy(feats[rows]), bounds=torch.from_numpy(bounds),
                          object_features=torch.from_numpy(feats),
                          object_text=torch.from_numpy(text.astype(np.float32)),
                          object_boxes=torch.from_numpy(boxes.astype(np.float32)),
                          object_ids=torch.arange(n_tok, dtype=torch.int64), object_labels=[""] * n_tok,
                          colors=torch.from_numpy(cols[rows]), object_colors=torch.from_numpy(cols))


def keyframe_tokens(rgbs: Iterable[np.ndarray], encoder: "ImageEncoder", grid: int) -> FrameTokens:
    """FrameTokens of uint8 (h, w, 3) keyframes, each encoded by `encoder` (the mapper's)."""
    tokens = FrameTokens(grid=grid, text_dim=encoder.text_dim)
    with torch.inference_mode():
        for rgb in rgbs:
            tokens.add(rgb, encoder.encode(rgb))  # (C, h', w') pooled to (g*g, C)
    return tokens


class Frames2dSceneBuilder:
    """Builds saved maps' 2D-baseline SceneInputs from their keyframes. One image encoder, built
    from the first map's encoder config, serves every map; a map whose encoder differs is refused,
    since its features would not be of the kind the model trains on."""

    def __init__(self, grid: int, num_points: int, max_tokens: int, seed: int = 0) -> None:
        self.grid, self.num_points, self.max_tokens, self.seed = grid, num_points, max_tokens, seed
        self._encoder = SavedEncoder()

    def scene_of_map(self, map_dir: str | Path, bounds: np.ndarray) -> SceneInput:
        """The 2D input of the saved map at `map_dir`, in the location frame `bounds` (2, 3)."""
        from llm3d_core.mapping.map_files import read_map_keyframes

        scene_id = Path(map_dir).name
        keyframes, config = read_map_keyframes(map_dir)
        if not keyframes:
            raise ValueError(f"map {scene_id} saved no keyframes: the 2D baseline has no frames to read")
        encoder = self._encoder.get(config.get("encoder"), f"map {scene_id}")
        tokens = keyframe_tokens(list(keyframes["rgb"]), encoder, self.grid)
        return tokens.scene_input(bounds, self.num_points, self.max_tokens, self.seed)
