"""Geometric facts of a scene graph that the language data states; each definition is documented
because the tests recompute it independently from the Scene.

Boxes are the instances' axis-aligned world boxes (z up). Following ScanRefer / Sr3D (Achlioptas
et al. 2020, "ReferIt3D"), relations are decided from boxes and supports:
- "on"/"in": the annotated support relation (Instance.support_relation / support_id).
- near: horizontal (xy) gap between the two boxes <= NEAR_M; "not near": gap >= FAR_M.
- between(t; a, b): t's centre projects onto segment a-b (xy centres) at 0.2 <= s <= 0.8 and lies
  within BETWEEN_M of it, and |ab| >= 1 m.
- left/right from a viewpoint: the viewer stands in front of an anchor (its front is local -y
  turned by yaw_deg), looks at it; the target is left when the z of cross(view_dir, target - viewer)
  is >= LR_MARGIN_M, right when <= -LR_MARGIN_M (and the target is ahead of the viewer).
- size class: the box's largest side < 0.35 m small, < 1.0 m medium, else large.
"""

from __future__ import annotations

import math

import numpy as np

from sim.scenes.scene import Instance

NEAR_M = 0.5
FAR_M = 1.5
BETWEEN_M = 0.5
LR_MARGIN_M = 0.4
VIEW_DISTANCE_M = 1.5  # metres in front of the anchor's front face
SIZE_LIMITS = (0.35, 1.0)
SIZE_MARGIN = 0.05  # sizes this close to a limit are not asked about (ambiguous to a human)


def xy_gap(a: Instance, b: Instance) -> float:
    """Horizontal distance between two boxes (0 when their footprints touch or overlap)."""
    d = np.maximum(np.maximum(a.box_min[:2] - b.box_max[:2], b.box_min[:2] - a.box_max[:2]), 0.0)
    return float(np.linalg.norm(d))


def box_gap(a: Instance, b: Instance) -> float:
    """3D distance between two boxes (0 when they touch or overlap)."""
    d = np.maximum(np.maximum(a.box_min - b.box_max, b.box_min - a.box_max), 0.0)
    return float(np.linalg.norm(d))


def point_box_xy(p: np.ndarray, inst: Instance) -> float:
    """Horizontal distance from a point (x, y) to a box footprint."""
    d = np.maximum(np.maximum(inst.box_min[:2] - p[:2], p[:2] - inst.box_max[:2]), 0.0)
    return float(np.linalg.norm(d))


def volume(inst: Instance) -> float:
    return float(np.prod(inst.size))


def size_class(inst: Instance) -> str | None:
    """"small" | "medium" | "large" from the largest box side; None within SIZE_MARGIN of a limit."""
    side = float(inst.size.max())
    if any(abs(side - lim) < SIZE_MARGIN for lim in SIZE_LIMITS):
        return None
    return "small" if side < SIZE_LIMITS[0] else "medium" if side < SIZE_LIMITS[1] else "large"


def front_dir(inst: Instance) -> np.ndarray:
    """(2,) unit xy direction the object's front faces (catalog objects face local -y)."""
    yaw = math.radians(inst.yaw_deg)
    return np.array([math.sin(yaw), -math.cos(yaw)])


def viewpoint(anchor: Instance) -> tuple[np.ndarray, np.ndarray]:
    """Viewer xy in front of `anchor` and its unit view direction (towards the anchor)."""
    f = front_dir(anchor)
    half = 0.5 * float(abs(f[0]) * anchor.size[0] + abs(f[1]) * anchor.size[1])  # half extent along f
    return anchor.center[:2] + f * (half + VIEW_DISTANCE_M), -f


def left_or_right(anchor: Instance, target: Instance) -> str | None:
    """"left" | "right" of `target` for a viewer facing `anchor` from its front; None when unclear."""
    eye, view = viewpoint(anchor)
    rel = target.center[:2] - eye
    if float(rel @ view) < 0.5:  # behind or beside the viewer: left/right would be confusing
        return None
    side = float(view[0] * rel[1] - view[1] * rel[0])  # z of cross(view, rel): > 0 is counter-clockwise = left
    if side >= LR_MARGIN_M:
        return "left"
    if side <= -LR_MARGIN_M:
        return "right"
    return None


def is_between(t: Instance, a: Instance, b: Instance) -> bool:
    """Whether t's centre lies between a's and b's centres (see module docstring)."""
    pa, pb, pt = a.center[:2], b.center[:2], t.center[:2]
    ab = pb - pa
    length = float(np.linalg.norm(ab))
    if length < 1.0:
        return False
    s = float((pt - pa) @ ab) / length**2
    perp = abs(float(ab[0] * (pt - pa)[1] - ab[1] * (pt - pa)[0])) / length
    return 0.2 <= s <= 0.8 and perp <= BETWEEN_M
