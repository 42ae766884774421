"""Scene encoders: map points or map objects -> a prefix of LLM input embeddings.

- `PointSceneEncoder` follows 3D-LLM (Hong et al. 2023, section 3): N points sampled from the map,
  each with its fused feature (D) and a 3D position embedding (per-axis sinusoidal embeddings of
  the point's bin among 256 bins of the scene bounds, concatenated); a perceiver / Q-Former with
  32 learned queries cross-attends to the points, and a linear projection maps the queries into
  the LLM's embedding space.
- `ObjectSceneEncoder` follows Chat-Scene (Huang et al. 2024): one token per map object, from its
  pooled 3D feature, its text-space feature, its colour and an embedding of its box.

Both return (prefix (B, P, H), mask (B, P)); masked prefix slots are padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from llm3d_core.model.configuration_llm3d import Llm3dConfig


def sinusoidal_embedding(index: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sin/cos embedding of (…) integer or float positions -> (…, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=index.device, dtype=torch.float32) / half)  # (half,)
    angles = index.float()[..., None] * freqs  # (…, half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)  # (…, dim)


def position_embedding(xyz: torch.Tensor, bounds: torch.Tensor, dim_per_axis: int, bins: int = 256) -> torch.Tensor:
    """3D-LLM sec. 3: per-axis sinusoidal embedding of the bin index over the scene bounds, concatenated.

    xyz (B, N, 3), bounds (B, 2, 3) -> (B, N, 3 * dim_per_axis).
    """
    lo, hi = bounds[:, None, 0], bounds[:, None, 1]  # (B, 1, 3)
    frac = (xyz - lo) / (hi - lo).clamp_min(1e-6)  # (B, N, 3)
    idx = (frac * bins).floor().clamp(0, bins - 1)  # (B, N, 3)
    emb = sinusoidal_embedding(idx, dim_per_axis, max_period=bins * 4.0)  # (B, N, 3, P)
    return emb.flatten(-2)  # (B, N, 3P)


def box_embedding(boxes: torch.Tensor, bounds: torch.Tensor, dim_per_axis: int, bins: int = 256) -> torch.Tensor:
    """Sinusoidal embedding of box centres (over the scene bounds) and sizes (over the scene extent).

    boxes (B, K, 6) min xyz, max xyz; bounds (B, 2, 3) -> (B, K, 6 * dim_per_axis).
    """
    centre = (boxes[..., :3] + boxes[..., 3:]) / 2  # (B, K, 3)
    size_bounds = torch.stack([torch.zeros_like(bounds[:, 0]), bounds[:, 1] - bounds[:, 0]], dim=1)  # (B, 2, 3)
    return torch.cat([position_embedding(centre, bounds, dim_per_axis, bins),
                      position_embedding(boxes[..., 3:] - boxes[..., :3], size_bounds, dim_per_axis, bins)],
                     dim=-1)  # (B, K, 6P)


class PerceiverBlock(nn.Module):
    """Queries cross-attend to the points, then self-attend, then an MLP (pre-norm, residual)."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(d), nn.LayerNorm(d)
        self.cross = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm_s = nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm_m = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(dropout))

    def forward(self, q: torch.Tensor, kv: torch.Tensor, kv_pad: torch.Tensor | None = None) -> torch.Tensor:
        kv_n = self.norm_kv(kv)  # (B, N, d)
        q = q + self.cross(self.norm_q(q), kv_n, kv_n, key_padding_mask=kv_pad, need_weights=False)[0]  # (B, Q, d)
        s = self.norm_s(q)
        q = q + self.self_attn(s, s, s, need_weights=False)[0]  # (B, Q, d)
        return q + self.mlp(self.norm_m(q))  # (B, Q, d)


class PointSceneEncoder(nn.Module):
    """3D-LLM sec. 3: sampled points (features + sinusoidal 3D positions) -> 32 perceiver queries -> LLM prefix."""

    def __init__(self, config: Llm3dConfig, llm_hidden: int) -> None:
        super().__init__()
        c = config
        self.config = c
        width = c.feature_dim + 3 + 3 * c.pos_dim  # feature, colour, position
        self.input = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, c.d_model))
        self.queries = nn.Parameter(torch.randn(c.num_queries, c.d_model) * 0.02)
        self.blocks = nn.ModuleList([PerceiverBlock(c.d_model, c.num_heads, c.dropout) for _ in range(c.num_layers)])
        self.norm = nn.LayerNorm(c.d_model)
        self.projector = nn.Linear(c.d_model, llm_hidden)  # into the LLM's embedding space

    def forward(self, scene: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        pos = position_embedding(scene["points"], scene["bounds"], c.pos_dim, c.num_bins)  # (B, N, 3P)
        x = self.input(torch.cat([scene["features"], scene["colors"], pos], dim=-1))  # (B, N, d)
        q = self.queries[None].expand(x.shape[0], -1, -1)  # (B, Q, d)
        for block in self.blocks:
            q = block(q, x)  # (B, Q, d)
        prefix = self.projector(self.norm(q))  # (B, Q, H)
        return prefix, torch.ones(prefix.shape[:2], dtype=torch.bool, device=prefix.device)  # (B, Q)


class ObjectSceneEncoder(nn.Module):
    """Chat-Scene style: one LLM token per map object (pooled feature + text feature + box embedding).

    Objects also attend to each other once, so a token can carry relations ("next to the sofa").
    A scene without objects still yields one (learned) token, so the prompt is never empty.
    """

    def __init__(self, config: Llm3dConfig, llm_hidden: int) -> None:
        super().__init__()
        c = config
        self.config = c
        self.feat = nn.Sequential(nn.LayerNorm(c.feature_dim), nn.Linear(c.feature_dim, c.d_model))
        self.text = nn.Sequential(nn.LayerNorm(c.text_dim), nn.Linear(c.text_dim, c.d_model))
        self.box = nn.Linear(6 * c.pos_dim, c.d_model)  # sinusoidal centre + size
        # Colour names are not linear in RGB ("brown" vs "orange" is a matter of brightness): a small MLP.
        self.color = nn.Sequential(nn.Linear(3, c.d_model), nn.GELU(), nn.Linear(c.d_model, c.d_model))
        self.empty = nn.Parameter(torch.randn(1, c.d_model) * 0.02)
        self.mix = nn.TransformerEncoderLayer(c.d_model, c.num_heads, 4 * c.d_model, c.dropout, batch_first=True,
                                              norm_first=True)
        self.norm = nn.LayerNorm(c.d_model)
        self.projector = nn.Linear(c.d_model, llm_hidden)

    def forward(self, scene: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        box_emb = box_embedding(scene["object_boxes"], scene["bounds"], c.pos_dim, c.num_bins)  # (B, K, 6P)
        text = scene["object_text"][..., : c.text_dim]  # (B, K, T)
        x = (self.feat(scene["object_features"]) + self.text(text) + self.box(box_emb)
             + self.color(scene["object_colors"]))  # (B, K, d)
        mask = scene["object_mask"].clone()  # (B, K) True = real object
        empty = ~mask.any(dim=1)  # (B,)
        if empty.any():
            x[empty, 0] = self.empty[0].to(x.dtype)
            mask[empty, 0] = True
        x = self.mix(x, src_key_padding_mask=~mask)  # (B, K, d)
        prefix = self.projector(self.norm(x))  # (B, K, H)
        return prefix * mask[..., None], mask


def build_scene_encoder(config: Llm3dConfig, llm_hidden: int) -> nn.Module:
    if config.scene_encoder == "points":
        return PointSceneEncoder(config, llm_hidden)
    return ObjectSceneEncoder(config, llm_hidden)
