"""Losses of UniVLG's mask-decoding grounding (Jain et al., ICML 2025, sec. 3), and box <-> mask helpers.

UniVLG grounds a referring expression by decoding a mask over the scene's 3D points and trains
it with Mask2Former's set loss (Cheng et al. 2022): queries are matched one-to-one to the target
objects by the Hungarian algorithm on a mask + class cost, then matched queries take a sigmoid
BCE and a Dice loss on their masks and every query a classification loss. UniVLG adds a box
loss: L1 + generalised IoU between the target box and the box enclosing the predicted mask. Its
motivation (sec. 3): a mask with a few stray, distant points costs little in BCE/Dice (a few
points out of thousands), but the box that encloses it is then far too large, which is what a
robot acting on the box sees. Penalising the enclosing box suppresses such stray points.

The enclosing box (min and max over the masked points) is not differentiable in the mask, so it
is replaced by `soft_box`, the mask-probability-weighted extreme: the expected box enclosing a
mask drawn point by point from the predicted probabilities (each point in with probability p,
independently), given that the mask is not empty. Per axis, the top point of such a mask is
point i with probability p_i * prod_{x_j > x_i} (1 - p_j), so the expected max is a convex
combination of the coordinates. With hard masks (p in {0, 1}) it is exactly the enclosing box.
A stray point d metres beyond the object with probability p moves the expected max by about
p * d, and the gradient on its p is about d: the farther a stray point, the harder the box loss
pushes it out. (A softmax over coordinates with a temperature was tried first: when one stray
point dominates it saturates and its gradient vanishes, exactly when it is needed.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------- masks and boxes
def target_masks_from_boxes(points: torch.Tensor, boxes: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """Ground-truth masks: the points inside each (grown by `margin`) box.

    points (..., N, 3), boxes (..., T, 6) min xyz, max xyz -> (..., T, N) bool (leading dims: a
    batch of scenes). UniVLG's 3D masks come from instance labels; our records carry boxes, so a
    target's mask is the points its box contains.
    """
    lo = boxes[..., :, None, :3] - margin  # (..., T, 1, 3)
    hi = boxes[..., :, None, 3:] + margin  # (..., T, 1, 3)
    pts = points[..., None, :, :]  # (..., 1, N, 3)
    return ((pts >= lo) & (pts <= hi)).all(dim=-1)  # (..., T, N)


def ordered_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes (…, 6) whose corners may come in either order -> [min xyz, max xyz] (…, 6)."""
    return torch.cat([torch.minimum(boxes[..., :3], boxes[..., 3:]), torch.maximum(boxes[..., :3], boxes[..., 3:])],
                     dim=-1)


def mask_to_box(points: torch.Tensor | np.ndarray, mask: torch.Tensor | np.ndarray) -> np.ndarray | None:
    """The axis-aligned box (6,) [min xyz, max xyz] of the masked points; None for an empty mask.

    UniVLG sec. 3: the predicted box is the box enclosing the predicted mask. An empty mask has no
    box, and returning one (e.g. a zero box at the origin) would send a robot somewhere wrong.
    """
    pts = torch.as_tensor(points)
    m = torch.as_tensor(mask, dtype=torch.bool, device=pts.device)
    if pts.ndim != 2 or pts.shape[1] != 3 or m.shape != pts.shape[:1]:
        raise ValueError(f"need points (N, 3) and mask (N,), got {tuple(pts.shape)} and {tuple(m.shape)}")
    if not bool(m.any()):
        return None
    sel = pts[m].double()  # (M, 3)
    return torch.cat([sel.min(dim=0).values, sel.max(dim=0).values]).cpu().numpy()  # (6,)


def extreme_orders(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The point orders soft_box walks, (N, 3) each: most negative first and most positive first, per
    axis. Depends on the points only, so questions about one scene share them."""
    return (torch.argsort(-points, dim=0, descending=True), torch.argsort(points, dim=0, descending=True))


def soft_box(points: torch.Tensor, mask_logits: torch.Tensor,
             orders: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Differentiable box enclosing each soft mask (UniVLG's box loss, sec. 3): the expected box of a
    mask sampled from the probabilities, given that it is not empty (see the module docstring).

    points (N, 3), mask_logits (M, N) -> (M, 6) [min xyz, max xyz], each a convex combination of
    the points' coordinates. Computed in log space (log p, log(1 - p) from the logits), so
    probabilities near 0 or 1 neither underflow nor give NaN gradients. orders: extreme_orders(points),
    when the caller has them.
    """
    log_p = F.logsigmoid(mask_logits)  # (M, N)
    log_out = F.logsigmoid(-mask_logits)  # (M, N): log(1 - p)
    corners = []
    orders = orders if orders is not None else extreme_orders(points)
    for order in orders:  # min = -max(-x), then max; order (N, 3): most extreme first, per axis
        axes = []
        for a in range(3):
            idx = order[:, a]  # (N,)
            # index_select, not fancy indexing: its backward is an index_add, several times faster on CPU
            lp, lo = log_p.index_select(1, idx), log_out.index_select(1, idx)  # (M, N)
            before = torch.cumsum(lo, dim=1) - lo  # (M, N): log P(no more extreme point is in the mask)
            w = torch.softmax(lp + before, dim=1)  # (M, N): P(point is the extreme | mask not empty)
            axes.append(w @ points[idx, a].to(w.dtype))  # (M,)
        corners.append(torch.stack(axes, dim=-1))  # (M, 3)
    return torch.cat(corners, dim=-1)  # (M, 6)


def box_volume(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 3:] - boxes[..., :3]).clamp_min(0).prod(dim=-1)  # (…,)


def _intersection_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Intersection and union volumes of paired boxes (…, 6), (…, 6) -> (…,), (…,)."""
    inter = (torch.minimum(a[..., 3:], b[..., 3:]) - torch.maximum(a[..., :3], b[..., :3])).clamp_min(0).prod(dim=-1)
    return inter, box_volume(a) + box_volume(b) - inter


def box_iou_3d(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """IoU of paired axis-aligned 3D boxes [min xyz, max xyz]: (…, 6), (…, 6) -> (…,) (broadcasts)."""
    inter, union = _intersection_union(a, b)
    return inter / (union + eps)


def generalized_box_iou_3d(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Generalised IoU (Rezatofighi et al. 2019) of paired axis-aligned 3D boxes: (M, 6), (M, 6) -> (M,).

    GIoU = IoU - (|C| - |A u B|) / |C| with C the smallest box enclosing both; unlike IoU it still
    has a gradient when the boxes do not overlap.
    """
    inter, union = _intersection_union(a, b)  # (M,), (M,)
    hull = (torch.maximum(a[:, 3:], b[:, 3:]) - torch.minimum(a[:, :3], b[:, :3])).clamp_min(0).prod(dim=-1)  # (M,)
    iou = inter / (union + eps)
    return iou - (hull - union) / (hull + eps)


# ---------------------------------------------------------------------- mask losses and costs
def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss (M, N), (M, N) -> (M,), with +1 smoothing as in Mask2Former."""
    p = logits.sigmoid()  # (M, N)
    return 1 - (2 * (p * targets).sum(-1) + 1) / (p.sum(-1) + targets.sum(-1) + 1)


def mask_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sigmoid BCE averaged over points: (M, N), (M, N) -> (M,)."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(-1)


def pairwise_mask_costs(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE and Dice costs of every (query, target) pair: (Q, N), (T, N) -> (Q, T), (Q, T).

    Written as matrix products (BCE = softplus(-x) on positives + softplus(x) on negatives) so
    the Q x T matrix costs two (Q, N) x (N, T) products instead of Q * T mask comparisons.
    """
    n = logits.shape[1]
    t = targets.to(logits.dtype)  # (T, N)
    bce = (F.softplus(-logits) @ t.T + F.softplus(logits) @ (1 - t).T) / n  # (Q, T)
    p = logits.sigmoid()  # (Q, N)
    dice = 1 - (2 * (p @ t.T) + 1) / (p.sum(-1)[:, None] + t.sum(-1)[None] + 1)  # (Q, T)
    return bce, dice


def hungarian_match(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost one-to-one assignment (scipy's linear_sum_assignment) of a (Q, T) cost matrix.

    Returns (query indices, target indices), each (min(Q, T),), sorted by query.
    """
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost.detach().float().cpu().numpy())
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)


@dataclass
class LossWeights:
    """Weights of the terms (Mask2Former: BCE 5, Dice 5, class 2, no-object 0.1; DETR: L1 5, GIoU 2)."""

    mask_bce: float = 5.0
    dice: float = 5.0
    score: float = 2.0
    no_object: float = 0.1
    box_l1: float = 5.0
    giou: float = 2.0


def scene_grounding_losses(mask_logits: torch.Tensor, scores: torch.Tensor, points: torch.Tensor,
                           target_masks: torch.Tensor, target_boxes: torch.Tensor, extent: torch.Tensor,
                           w: LossWeights, orders: tuple[torch.Tensor, torch.Tensor] | None = None,
                           grow: float = 0.0) -> dict[str, torch.Tensor]:
    """UniVLG's grounding loss for one scene and one decoder layer (sec. 3).

    mask_logits (Q, N), scores (Q,) "is a referred object" logits, points (N, 3), target_masks
    (T, N) bool (T >= 1, non-empty), target_boxes (T, 6), extent (3,) the scene's size (box L1
    is measured in fractions of it, as DETR normalises by the image size). orders:
    extreme_orders(points), shared by calls on one scene. grow: metres added to every side of the
    masks' boxes (half the voxel a point stands for), as decoding does. Returns the weighted terms;
    their sum is the loss.
    """
    # fp32 whatever the autocast: the box's cumulative log-products and the BCE need the precision.
    mask_logits, scores, points = mask_logits.float(), scores.float(), points.float()
    t = target_masks.to(mask_logits.dtype)  # (T, N)
    with torch.no_grad():  # the matching's costs take no gradient
        bce_cost, dice_cost = pairwise_mask_costs(mask_logits, t)  # (Q, T)
        cost = w.mask_bce * bce_cost + w.dice * dice_cost - w.score * scores.sigmoid()[:, None]  # (Q, T)
    q_idx, t_idx = hungarian_match(cost)
    q_idx, t_idx = q_idx.to(mask_logits.device), t_idx.to(mask_logits.device)
    matched = mask_logits[q_idx]  # (M, N)
    score_target = torch.zeros_like(scores)  # (Q,)
    score_target[q_idx] = 1.0
    score_weight = torch.full_like(scores, w.no_object)  # (Q,)
    score_weight[q_idx] = 1.0
    box = soft_box(points, matched, orders)  # (M, 6)
    box = box + box.new_tensor([-grow] * 3 + [grow] * 3)  # (M, 6)
    tgt_box = target_boxes[t_idx].to(box.dtype)  # (M, 6)
    scale = extent.clamp_min(1e-3).repeat(2).to(box.dtype)  # (6,)
    return {
        "mask_bce": w.mask_bce * mask_bce(matched, t[t_idx]).mean(),
        "dice": w.dice * dice_loss(matched, t[t_idx]).mean(),
        "score": w.score * (F.binary_cross_entropy_with_logits(scores, score_target, reduction="none")
                            * score_weight).sum() / score_weight.sum(),
        "box_l1": w.box_l1 * ((box - tgt_box).abs() / scale).sum(-1).mean(),
        "giou": w.giou * (1 - generalized_box_iou_3d(box, tgt_box)).mean(),
    }
