"""UniVLG's grounding head: language-conditioned object queries decode a mask over the scene's points.

UniVLG (Jain et al., ICML 2025, sec. 3) grounds a referring expression with a Mask2Former-style
decoder (Cheng et al. 2022) instead of regressing a box: Q learned object queries, in every
layer, cross-attend to the scene's point features (with Mask2Former's masked attention: only
to the points of their previous mask), cross-attend to the language tokens, self-attend, and
pass an MLP. Each query's mask over the N points is the dot product of its mask embedding with
per-point mask embeddings; a per-query score says whether it is the referred object. The box is
the axis-aligned box of the points whose mask probability exceeds 0.5.

Choices where the paper's setting differs from ours:
- Point features: UniVLG has a 3D backbone with multi-scale features; we have the map's fused
  2D features at N sampled points, so the head embeds (feature, colour, 3D position) per point
  with its own layers (it does not share the 3D-LLM perceiver, whose checkpoints stay as they
  are) and uses one scale.
- Language: by default the frozen LLM's last hidden states of the question (contextual: "the
  chair next to the table" differs from "the table next to the chair"); `text_source:
  embeddings` uses its input embeddings, which avoids one LLM pass per question.
- Score: one "is this the referred object" logit per query (sigmoid), since a `ground` record
  names one phrase; UniVLG scores queries against the sentence's tokens.
- Superpoints (`mask_head.pool: objects`): masks over ScanNet are commonly decoded over
  superpoints, not single points, so a mask cannot hold stray points of the floor or of a
  neighbour. Our superpoints are the map's object proposals: each point takes the mean mask logit
  of the proposal whose box holds it (the smallest such box), and points of no proposal (floor,
  walls) are never in a mask. Off by default (`points`: one logit per point, as published).
- Two-stage queries (`mask_head.query_init: pointer`): learned queries must learn from scratch which
  points a phrase names, and on this project's data and CPU budget they did not (test Acc@0.25
  2.7 %). As in two-stage DETRs (Zhu et al. 2021, Deformable DETR sec. 4.2), the queries can
  instead start from proposals: the object pointer (object_pointer.py) ranks the map's objects
  for the expression, and each of its top num_queries proposals seeds one query with its box and
  feature, its points as the initial mask (a mask-logit bias of +-prior_gain inside/outside its
  box, which the decoder's dot products then correct point by point) and the pointer's
  probability (as a logit) added to the query's score. Masks, losses and the box decoding are unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn

from llm3d_core.model.configuration_llm3d import Llm3dConfig
from llm3d_core.model.scene_encoder import box_embedding, position_embedding
from llm3d_core.model.univlg_losses import (LossWeights, extreme_orders, mask_to_box, ordered_boxes,
                                            scene_grounding_losses, target_masks_from_boxes)


class MaskGrounding(NamedTuple):
    """A mask-head grounding: box (6,) [min xyz, max xyz] (None when no query has a mask), mask (N,), score."""

    box: np.ndarray | None
    mask: np.ndarray  # (N,) bool over the scene's points
    score: float  # probability that the chosen query is the referred object


# Mask logit of points outside every proposal when masks are pooled over proposals: sigmoid ~ 2e-9,
# so they are never in a mask (logit > 0) and add almost nothing to BCE/Dice against targets
# they are not part of.
OUTSIDE_LOGIT = -20.0
# Initial mask-logit bias of a proposal query (query_init pointer): sigmoid(4) = 0.98 inside its box,
# 0.02 outside, so the first masks are the proposals' points; the decoder learns the corrections.
PRIOR_GAIN = 4.0


def point_segments(points: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """Proposal index of every point: points (S, N, 3), boxes (S, K, 6) [min xyz, max xyz], valid (S, K)
    -> (S, N) long, the smallest valid box that holds the point (within `margin` metres), -1 for none."""
    inside = target_masks_from_boxes(points, boxes, margin) & valid[..., None]  # (S, K, N)
    volume = (boxes[..., 3:] - boxes[..., :3]).clamp(min=0).prod(dim=-1)  # (S, K)
    cost = torch.where(inside, volume[..., None], torch.full_like(volume[..., None], float("inf")))  # (S, K, N)
    best = cost.argmin(dim=1)  # (S, N)
    return torch.where(inside.any(dim=1), best, torch.full_like(best, -1))  # (S, N)


def segment_matrix(segments: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot membership (S, N, K) of segments (S, N) (-1: no segment, an all-zero row)."""
    onehot = nn.functional.one_hot(segments.clamp(min=0), k).to(dtype)  # (S, N, K)
    return onehot * (segments >= 0)[..., None].to(dtype)


def pool_over_segments(logits: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """Each point's logit replaced by its segment's mean: logits (B, Q, N), member (S, N, K) with S = B
    or 1 -> (B, Q, N); points of no segment get OUTSIDE_LOGIT."""
    counts = member.sum(dim=1, keepdim=True).clamp(min=1.0)  # (S, 1, K)
    seg = logits @ (member / counts)  # (B, Q, K): mean logit per segment
    pooled = seg @ member.transpose(1, 2)  # (B, Q, N)
    outside = (member.sum(dim=-1) == 0)[:, None, :]  # (S, 1, N)
    return torch.where(outside, torch.full_like(pooled, OUTSIDE_LOGIT), pooled)


class MaskDecoderLayer(nn.Module):
    """One Mask2Former-style layer with a language step (UniVLG sec. 3): points, text, self, MLP; pre-norm."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_p = nn.LayerNorm(d)
        self.points = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm_t = nn.LayerNorm(d)
        self.text = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm_s = nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm_m = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(dropout))

    def forward(self, q: torch.Tensor, pts: torch.Tensor, text: torch.Tensor, text_pad: torch.Tensor,
                point_block: torch.Tensor | None) -> torch.Tensor:
        """q (B, Q, d), pts (B, N, d) or (1, N, d) shared by the B questions, text (B, L, d), text_pad
        (B, L) True = padding, point_block (S * heads, Q', N) True = this query may not attend to this
        point, with S = pts' batch and Q' = B * Q / S."""
        b, nq, d = q.shape
        # Queries attend to points independently of each other, so B questions about one scene are
        # one sequence of B * Q queries over the points: the points' keys and values are projected once.
        qp = q.reshape(pts.shape[0], -1, d)  # (S, Q', d)
        att = self.points(self.norm_p(qp), pts, pts, attn_mask=point_block, need_weights=False)[0]  # (S, Q', d)
        q = q + att.reshape(b, nq, d)  # (B, Q, d)
        q = q + self.text(self.norm_t(q), text, text, key_padding_mask=text_pad, need_weights=False)[0]  # (B, Q, d)
        s = self.norm_s(q)
        q = q + self.self_attn(s, s, s, need_weights=False)[0]  # (B, Q, d)
        return q + self.mlp(self.norm_m(q))  # (B, Q, d)


class MaskGroundingHead(nn.Module):
    """Language-conditioned mask decoder over the scene's points (UniVLG sec. 3)."""

    def __init__(self, config: Llm3dConfig, text_width: int) -> None:
        super().__init__()
        self.config = config
        m = config.mask_head
        d = m.d_model
        width = config.feature_dim + 3 + 3 * config.pos_dim  # feature, colour, position (as the perceiver's input)
        self.point_in = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, d))
        self.point_mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.point_norm = nn.LayerNorm(d)
        self.point_mask = nn.Linear(d, d)  # per-point mask embeddings
        self.text_in = nn.Sequential(nn.LayerNorm(text_width), nn.Linear(text_width, d))
        self.queries = nn.Parameter(torch.randn(m.num_queries, d) * 0.02)
        self.layers = nn.ModuleList([MaskDecoderLayer(d, m.num_heads, config.dropout) for _ in range(m.num_layers)])
        self.query_norm = nn.LayerNorm(d)
        self.query_mask = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))  # Mask2Former's mask MLP
        self.score = nn.Linear(d, 1)
        if m.query_init == "pointer":  # built last: checkpoints without it keep their initialisation order
            self.proposal_box = nn.Linear(6 * config.pos_dim, d)
            self.proposal_feature = nn.Sequential(nn.LayerNorm(config.feature_dim), nn.Linear(config.feature_dim, d))
            self.prior_gain = nn.Parameter(torch.tensor(PRIOR_GAIN))

    def decode(self, points: torch.Tensor, mask_logits: torch.Tensor, scores: torch.Tensor) -> MaskGrounding:
        """decode_grounding of one question's final prediction, its box grown by half a point_size."""
        return decode_grounding(points, mask_logits, scores, self.config.mask_head.point_size / 2)

    @property
    def needs_prior(self) -> bool:
        """True when forward() needs the object pointer's logits (mask_head.query_init pointer)."""
        return self.config.mask_head.query_init == "pointer"

    def proposal_queries(self, scene: dict[str, torch.Tensor], prior: torch.Tensor, b: int
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Two-stage queries from the pointer's top proposals (query_init pointer; see the module doc).

        prior (B, K') the pointer's logits over the scene's first K' object slots (-inf: no object);
        the scene holds S = B or 1 scenes. Returns queries (B, Q, d), their mask-logit bias (B, Q, N)
        and their score prior (B, Q) = the logit of the proposal's probability, Q = min(num_queries, K).
        """
        boxes_all, feats_all = scene["object_boxes"], scene["object_features"]  # (S, K, 6), (S, K, D)
        k = boxes_all.shape[1]
        prior = prior.to(boxes_all.device, torch.float32)
        if prior.shape[1] > k:
            raise ValueError(f"the pointer's logits cover {prior.shape[1]} object slots, the scene has {k}")
        prior = nn.functional.pad(prior, (0, k - prior.shape[1]), value=float("-inf"))  # (B, K)
        prior = prior.masked_fill(~scene["object_mask"].expand(b, -1), float("-inf"))
        if not bool(torch.isfinite(prior).any(dim=1).all()):
            raise ValueError("two-stage mask queries need at least one map object the pointer scored per question")
        nq = min(self.config.mask_head.num_queries, k)
        prob, slot = prior.softmax(dim=-1).topk(nq, dim=-1)  # (B, Q), (B, Q)
        valid = scene["object_mask"].expand(b, -1).gather(1, slot)  # (B, Q): fewer objects leave empty queries
        boxes = boxes_all.expand(b, -1, -1).gather(1, slot[..., None].expand(-1, -1, 6))  # (B, Q, 6)
        feats = feats_all.expand(b, -1, -1).gather(1, slot[..., None].expand(-1, -1, feats_all.shape[-1]))  # (B, Q, D)
        c = self.config
        dtype = self.queries.dtype
        emb = (self.proposal_box(box_embedding(boxes, scene["bounds"].expand(b, -1, -1), c.pos_dim, c.num_bins).to(dtype))
               + self.proposal_feature(feats.to(dtype)))  # (B, Q, d)
        q = self.queries[:nq][None] + emb * valid[..., None]  # (B, Q, d)
        inside = target_masks_from_boxes(scene["points"].expand(b, -1, -1), boxes, c.mask_head.target_margin)  # (B, Q, N)
        bias = self.prior_gain * (inside.to(dtype) * 2 - 1)  # (B, Q, N)
        bias = bias.masked_fill(~valid[..., None], OUTSIDE_LOGIT)
        # The score prior is the pointer's probability as a logit: an untrained correction leaves the
        # query's score (a sigmoid) exactly the pointer's probability.
        return q, bias, torch.logit(prob, eps=1e-6).masked_fill(~valid, OUTSIDE_LOGIT)

    def embed_points(self, scene: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-point memory (B, N, d) from the batched scene tensors (see scene.collate_scenes)."""
        c = self.config
        pos = position_embedding(scene["points"], scene["bounds"], c.pos_dim, c.num_bins)  # (B, N, 3P)
        x = self.point_in(torch.cat([scene["features"], scene["colors"], pos], dim=-1))  # (B, N, d)
        return x + self.point_mlp(x)  # (B, N, d)

    def predict(self, q: torch.Tensor, point_mask_emb: torch.Tensor, member: torch.Tensor | None = None,
                prior: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits (B, Q, N) by dot product, and scores (B, Q), from queries (B, Q, d); with
        `member` (S, N, K) the logits are pooled over the proposals (superpoints); `prior` = the
        two-stage queries' (mask bias (B, Q, N), score prior (B, Q)), added to both."""
        qn = self.query_norm(q)  # (B, Q, d)
        logits = self.query_mask(qn) @ point_mask_emb.transpose(1, 2)  # (B, Q, N); point_mask_emb (B or 1, N, d)
        scores = self.score(qn)[..., 0]  # (B, Q)
        if prior is not None:
            logits, scores = logits + prior[0], scores + prior[1]
        if member is not None:
            logits = pool_over_segments(logits, member)  # (B, Q, N)
        return logits, scores  # (B, Q, N), (B, Q)

    def forward(self, scene: dict[str, torch.Tensor], text: torch.Tensor, text_pad: torch.Tensor,
                prior: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Predictions [(mask logits (B, Q, N), scores (B, Q))] of the initial queries and of every
        layer (Mask2Former predicts before the first layer too, for its masked attention); the last is final.

        text (B, L, text_width) question token states, text_pad (B, L) True = padding. The scene
        batch is B scenes, or one scene that all B questions are about (its points are embedded once).
        prior (B, K') the object pointer's logits over the scene's object slots: needed (and only
        read) with query_init pointer.
        """
        m = self.config.mask_head
        pts = self.embed_points(scene)  # (S, N, d), S = B or 1
        if pts.shape[0] not in (1, text.shape[0]):
            raise ValueError(f"{pts.shape[0]} scenes for {text.shape[0]} questions: give one scene per question "
                             "or one scene for all")
        pmask = self.point_mask(self.point_norm(pts))  # (S, N, d)
        txt = self.text_in(text.to(pts.dtype))  # (B, L, d)
        b, s = text.shape[0], pts.shape[0]
        two_stage = None
        if self.needs_prior:
            if prior is None:
                raise ValueError("this mask head starts its queries from the object pointer's choice "
                                 "(mask_head.query_init pointer): pass the pointer's logits as prior")
            q, bias, score_prior = self.proposal_queries(scene, prior, b)  # (B, Q, d), (B, Q, N), (B, Q)
            two_stage = (bias, score_prior)
        else:
            q = self.queries[None].expand(b, -1, -1)  # (B, Q, d)
        member = None
        if m.pool == "objects":
            segments = point_segments(scene["points"], scene["object_boxes"], scene["object_mask"])  # (S, N)
            member = segment_matrix(segments, scene["object_boxes"].shape[1], pts.dtype)  # (S, N, K)
        outputs = [self.predict(q, pmask, member, two_stage)]
        for layer in self.layers:
            block = None
            if m.masked_attention:
                block = outputs[-1][0].detach() < 0  # (B, Q, N): sigmoid < 0.5
                # A query whose mask is empty would attend to nothing (NaN); Mask2Former lets it see everything.
                block[block.all(dim=-1)] = False
                block = block.reshape(s, -1, block.shape[-1])  # (S, Q', N), as the layer groups the queries
                block = block.repeat_interleave(m.num_heads, dim=0)  # (S * heads, Q', N)
            q = layer(q, pts, txt, text_pad, block)  # (B, Q, d)
            outputs.append(self.predict(q, pmask, member, two_stage))
        return outputs

    # ------------------------------------------------------------------ losses and decoding
    def loss_weights(self) -> LossWeights:
        m = self.config.mask_head
        return LossWeights(m.mask_bce_weight, m.dice_weight, m.score_weight, m.no_object_weight, m.box_l1_weight,
                           m.giou_weight)

    def losses(self, outputs: list[tuple[torch.Tensor, torch.Tensor]], scene: dict[str, torch.Tensor],
               target_boxes: list[torch.Tensor], box_scale: float = 1.0) -> dict[str, torch.Tensor]:
        """UniVLG sec. 3 losses, summed over layers (deep supervision) and averaged over scenes.

        target_boxes[b] (T_b, 6): the referred object(s) of question b (in scene b, or in the one
        shared scene). A target whose box holds none
        of the sampled points has no mask to learn and is left out; a scene left without targets
        adds nothing (its queries are not told "nothing here", which would be false).
        box_scale multiplies the box terms' weights (a training schedule may bring them in late).
        Returns the terms and "total"; "scenes" counts the scenes that contributed.
        """
        m = self.config.mask_head
        used = outputs if m.deep_supervision else outputs[-1:]
        w = self.loss_weights()
        w = replace(w, box_l1=w.box_l1 * box_scale, giou=w.giou * box_scale)
        terms: dict[str, torch.Tensor] = {}
        scenes = 0
        shared = scene["points"].shape[0] == 1  # one scene for every question (see forward)
        # One unbind per layer, not an index per question: each index's backward would fill a
        # zero tensor of the whole batch's masks.
        per_question = [(logits.unbind(0), scores.unbind(0)) for logits, scores in used]
        shared_orders = extreme_orders(scene["points"][0]) if shared else None
        for b, boxes in enumerate(target_boxes):
            sb = 0 if shared else b
            points = scene["points"][sb]  # (N, 3)
            boxes = boxes.to(points.device, points.dtype).reshape(-1, 6)  # (T, 6)
            boxes = ordered_boxes(boxes)  # (T, 6)
            masks = target_masks_from_boxes(points, boxes, m.target_margin)  # (T, N)
            keep = masks.any(dim=1)  # (T,)
            if not bool(keep.any()):
                continue
            scenes += 1
            orders = shared_orders if shared else extreme_orders(points)  # once per scene, not per layer
            extent = scene["bounds"][sb, 1] - scene["bounds"][sb, 0]  # (3,)
            for logits, scores in per_question:
                for k, v in scene_grounding_losses(logits[b], scores[b], points, masks[keep], boxes[keep], extent,
                                                   w, orders, m.point_size / 2).items():
                    terms[k] = terms.get(k, 0.0) + v
        anchor = (outputs[-1][0].sum() + outputs[-1][1].sum()) * 0.0  # keeps the graph when no scene contributed
        out = {k: v / max(scenes, 1) for k, v in terms.items()}
        out["total"] = sum(out.values(), anchor)
        out["scenes"] = torch.tensor(float(scenes))
        return out


def decode_grounding(points: torch.Tensor, mask_logits: torch.Tensor, scores: torch.Tensor,
                     grow: float = 0.0) -> MaskGrounding:
    """The referred object from one scene's final prediction: points (N, 3), mask_logits (Q, N), scores (Q,).
    grow: metres added to every side of the box (half the voxel each point stands for).

    The top-scoring query wins (UniVLG sec. 3), its mask is prob > 0.5 and its box encloses the
    mask. A query with an empty mask predicts no object, so the next-best query with a non-empty
    mask is taken; when every mask is empty the result has box None and an all-false mask.
    """
    probs = scores.sigmoid()  # (Q,)
    masks = mask_logits > 0  # (Q, N): sigmoid > 0.5
    for q in torch.argsort(probs, descending=True).tolist():
        box = mask_to_box(points, masks[q])
        if box is not None:
            return MaskGrounding(box + np.array([-grow] * 3 + [grow] * 3), masks[q].cpu().numpy(), float(probs[q]))
    return MaskGrounding(None, np.zeros(points.shape[0], dtype=bool), float(probs.max()))
