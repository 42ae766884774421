"""Frame selection for large scenes (UniVLG, Jain et al., ICML 2025, sec. 3 / implementation details).

When a scene has more views than the model can take, UniVLG keeps a few views most relevant to
the question plus views spread over the scene for context: by default 5 chosen by the
similarity of the question's text feature to each frame's feature, and 10 more by farthest-point
sampling for coverage. Here a frame's feature is the mean of its text-aligned 2D features (the
encoder's MiniLM-space channels, the space the question is embedded in by llm3d_core.encoders.
text), and coverage is farthest-point sampling over camera positions, seeded by the relevant
frames so the coverage views fill the parts of the scene those do not see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from llm3d_core.encoders.base import ImageEncoder
    from llm3d_core.geometry import RGBDFrame


@dataclass
class FrameSelectionConfig:
    """How many frames a large scene keeps (UniVLG's default: 5 relevant + 10 for coverage)."""

    num_relevant: int = 5  # frames most similar to the question's text feature
    num_coverage: int = 10  # further frames by farthest-point sampling over camera positions

    def __post_init__(self) -> None:
        for name in ("num_relevant", "num_coverage"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.num_relevant + self.num_coverage == 0:
            raise ValueError("num_relevant + num_coverage must be >= 1 (a scene needs at least one frame)")


def pooled_text_feature(feature_map: torch.Tensor, text_dim: int) -> torch.Tensor:
    """A frame's text-space feature (text_dim,): the unit mean of the last `text_dim` channels of a (C, h, w) map."""
    if text_dim <= 0 or feature_map.shape[0] < text_dim:
        raise ValueError(f"frame selection needs text-aligned features (text_dim {text_dim}, "
                         f"feature map {tuple(feature_map.shape)}); use an encoder with text_aligned: true")
    text = feature_map[-text_dim:].flatten(1).float()  # (T, h*w)
    return F.normalize(text.mean(dim=1), dim=0)  # (T,)


def farthest_point_sampling(positions: np.ndarray, count: int, selected: list[int] | None = None) -> list[int]:
    """Greedy farthest-point sampling of `count` more indices of positions (F, 3), given `selected` ones.

    Each pick is the position farthest from everything chosen so far; without a start set the
    first pick is index 0 (deterministic). Returns only the new indices, in pick order.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    chosen = list(selected or [])
    picks: list[int] = []
    if len(pos) == 0 or count <= 0:
        return picks
    if not chosen:
        chosen, picks = [0], [0]
    dist = np.min(np.linalg.norm(pos[:, None] - pos[chosen][None], axis=-1), axis=1)  # (F,)
    while len(picks) < count and len(chosen) < len(pos):
        dist[chosen] = -1.0  # never pick a frame twice
        nxt = int(np.argmax(dist))
        picks.append(nxt)
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(pos - pos[nxt], axis=1))
    return picks


def select_frames(query: torch.Tensor, frame_features: torch.Tensor, camera_positions: np.ndarray,
                  config: FrameSelectionConfig | None = None) -> list[int]:
    """UniVLG's scheme: the `num_relevant` frames most similar to the query, then `num_coverage` by FPS.

    query (T,) text embedding, frame_features (F, T) per-frame text-space features, camera
    positions (F, 3). Returns frame indices (relevant first, by decreasing similarity, then the
    coverage picks); all frames when there are no more than the budget.
    """
    cfg = config or FrameSelectionConfig()
    n = int(frame_features.shape[0])
    if len(camera_positions) != n:
        raise ValueError(f"{n} frame features but {len(camera_positions)} camera positions")
    if n <= cfg.num_relevant + cfg.num_coverage:
        return list(range(n))
    sims = F.normalize(frame_features.float(), dim=1) @ F.normalize(query.float().flatten(), dim=0)  # (F,)
    relevant = torch.argsort(sims, descending=True)[: cfg.num_relevant].tolist()
    return relevant + farthest_point_sampling(camera_positions, cfg.num_coverage, relevant)


def select_frames_for_question(frames: list["RGBDFrame"], question: str, encoder: "ImageEncoder",
                               config: FrameSelectionConfig | None = None) -> list[int]:
    """Encodes each frame once and selects for `question` (MiniLM query vs pooled text-aligned features)."""
    from llm3d_core.encoders.text import get_text_encoder

    feats = torch.stack([pooled_text_feature(encoder.encode(f.rgb), encoder.text_dim) for f in frames])  # (F, T)
    positions = np.stack([np.asarray(f.T_world_camera, dtype=np.float64)[:3, 3] for f in frames])  # (F, 3)
    query = get_text_encoder("cpu").encode([question])[0]  # (T,)
    return select_frames(query, feats.cpu(), positions, config)
