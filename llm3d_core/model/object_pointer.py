"""The object pointer: a grounding answer's location tokens copied from the object the LLM points at.

3D-LLM (Hong et al. 2023, sec. 3.4) writes a grounded box as six location tokens generated one
by one. With the object-token scene encoder (Chat-Scene, Huang et al. 2024) every candidate box
is already in the prompt: one token per map object. Chat-Scene grounds by naming an object's
identifier; we keep 3D-LLM's answer format and let the LLM *point*: at the step where the first
location token is due, the LLM's hidden state is matched against the object tokens' hidden
states, and the six tokens of the chosen object's box follow (a copy mechanism, as in pointer
networks, Vinyals et al. 2015). The answer stays `<label> <loc_a>…<loc_f>`, decoded by the same
strict grammar; only where the coordinates come from changes. A box is thus always a real map
object's box, quantised to the location grid.

The pointer is a small transformer over [query; objects]: the query is the LLM state; each
object is its LLM state plus its own inputs (pooled map feature, text-space feature, colour and
an embedding of its box), so it can tell a purple book from a blue one without relying on the
LLM having kept that in the object token's state, and resolve relations ("the box closest to the
chair") from geometry. Its output is one logit per object slot.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from llm3d_core.model.configuration_llm3d import Llm3dConfig
from llm3d_core.model.location_tokens import SceneBounds, quantize
from llm3d_core.model.scene_encoder import box_embedding
from llm3d_core.model.univlg_losses import box_iou_3d, ordered_boxes


class ObjectPointer(nn.Module):
    """LLM query state + object states + boxes -> one logit per object slot (padding at -inf)."""

    def __init__(self, config: Llm3dConfig, llm_hidden: int) -> None:
        super().__init__()
        c, p = config, config.pointer
        self.pos_dim, self.bins = c.pos_dim, c.num_bins
        self.query = nn.Sequential(nn.LayerNorm(llm_hidden), nn.Linear(llm_hidden, p.d_model))
        self.objects = nn.Sequential(nn.LayerNorm(llm_hidden), nn.Linear(llm_hidden, p.d_model))
        self.box = nn.Linear(6 * c.pos_dim, p.d_model)
        self.feature = nn.Sequential(nn.LayerNorm(c.feature_dim), nn.Linear(c.feature_dim, p.d_model))
        self.text = nn.Sequential(nn.LayerNorm(c.text_dim), nn.Linear(c.text_dim, p.d_model))
        self.color = nn.Sequential(nn.Linear(3, p.d_model), nn.GELU(), nn.Linear(p.d_model, p.d_model))
        self.text_dim = c.text_dim
        self.words = None
        if p.question_tokens:  # built last: checkpoints without it keep their initialisation order
            self.words = nn.Sequential(nn.LayerNorm(llm_hidden), nn.Linear(llm_hidden, p.d_model))
            self.word_type = nn.Parameter(torch.randn(p.d_model) * 0.02)
        self.query_type = nn.Parameter(torch.randn(p.d_model) * 0.02)  # tells the query slot from objects
        layer = nn.TransformerEncoderLayer(p.d_model, p.num_heads, 4 * p.d_model, p.dropout, batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, p.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(p.d_model)
        self.q_out = nn.Linear(p.d_model, p.d_model)
        self.k_out = nn.Linear(p.d_model, p.d_model)
        self.scale = 1.0 / math.sqrt(p.d_model)
        self.absence = None
        if p.absence:  # built last, as question_tokens: older checkpoints keep their initialisation order
            from llm3d_core.model.absence import AbsencePointer

            self.absence = AbsencePointer(config, llm_hidden)

    def forward(self, query: torch.Tensor, objects: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """query (B, H), objects (B, K, H) = the LLM states; inputs = the objects' own tensors, sliced
        to K slots: object_boxes (B, K, 6), bounds (B, 2, 3), object_mask (B, K) True = object,
        object_features (B, K, D), object_text (B, K, T), object_colors (B, K, 3); with
        pointer.question_tokens also words (B, L, H) and words_pad (B, L) True = padding
        -> logits (B, K), -inf where object_mask is False. Every row needs at least one object."""
        return self.encode(query, objects, inputs)[0]

    def encode(self, query: torch.Tensor, objects: torch.Tensor, inputs: dict[str, torch.Tensor]
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """As forward, also returning the query slot's final state (B, d_model): what the query
        learned from the words and every object, which the absence head reads."""
        mask = inputs["object_mask"]
        if not bool(mask.any(dim=1).all()):
            raise ValueError("the object pointer needs at least one object per scene")
        dtype = self.query[1].weight.dtype
        q = self.query(query.to(dtype)) + self.query_type  # (B, d)
        box = box_embedding(inputs["object_boxes"], inputs["bounds"], self.pos_dim, self.bins)  # (B, K, 6P)
        o = (self.objects(objects.to(dtype)) + self.box(box.to(dtype))
             + self.feature(inputs["object_features"].to(dtype))
             + self.text(inputs["object_text"][..., : self.text_dim].to(dtype))
             + self.color(inputs["object_colors"].to(dtype)))  # (B, K, d)
        parts, pads = [q[:, None]], [torch.zeros_like(mask[:, :1])]
        if self.words is not None:
            parts.append(self.words(inputs["words"].to(dtype)) + self.word_type)  # (B, L, d)
            pads.append(inputs["words_pad"])
        parts.append(o)
        pads.append(~mask)
        x = torch.cat(parts, dim=1)  # (B, 1 [+ L] + K, d)
        pad = torch.cat(pads, dim=1)  # True = padding
        x = self.norm(self.layers(x, src_key_padding_mask=pad))
        k = mask.shape[1]
        logits = (self.q_out(x[:, 0])[:, None] * self.k_out(x[:, -k:])).sum(-1) * self.scale  # (B, K)
        return logits.float().masked_fill(~mask, float("-inf")), x[:, 0].float()


OBJECT_INPUTS = ("object_boxes", "object_mask", "object_features", "object_text", "object_colors")


def object_inputs(scene: dict[str, torch.Tensor], slots: int, rows: list[int] | None = None,
                  device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """The pointer's per-object inputs from a collated scene batch, cut to the first `slots` object slots."""
    pick = (lambda t: t[rows]) if rows is not None else (lambda t: t)
    out = {k: pick(scene[k])[:, :slots] for k in OBJECT_INPUTS}
    out["bounds"] = pick(scene["bounds"])
    return {k: v.to(device) if device is not None else v for k, v in out.items()}


def pointer_targets(boxes: torch.Tensor, mask: torch.Tensor, targets: list[torch.Tensor | None],
                    min_iou: float) -> torch.Tensor:
    """The slot each target box points at: the object overlapping it most, if by at least min_iou.

    boxes (B, K, 6), mask (B, K), targets: B boxes (6,) or None -> (B,) long, -1 = no target
    (no proposal covers the annotated object; such a record teaches the pointer nothing).
    """
    out = torch.full((boxes.shape[0],), -1, dtype=torch.long, device=boxes.device)
    for i, box in enumerate(targets):
        if box is None or not bool(mask[i].any()):
            continue
        box = ordered_boxes(box.to(boxes.device, boxes.dtype))
        iou = box_iou_3d(boxes[i], box[None]).masked_fill(~mask[i], -1.0)  # (K,)
        best = int(iou.argmax())
        if float(iou[best]) >= min_iou:
            out[i] = best
    return out


def box_bins(boxes: torch.Tensor, bounds: torch.Tensor) -> np.ndarray:
    """Location-token bins of each object box: boxes (K, 6), bounds (2, 3) -> (K, 6) int."""
    b = SceneBounds(bounds[0].double().cpu().numpy(), bounds[1].double().cpu().numpy())
    corners = boxes.double().cpu().numpy().reshape(-1, 2, 3)  # (K, 2, 3)
    return quantize(corners, b.lo, b.hi).reshape(-1, 6)
