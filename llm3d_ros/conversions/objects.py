"""llm3d_interfaces/Object3D <-> the reasoner's grounded boxes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from geometry_msgs.msg import Vector3

from llm3d_core.messages import ConversionError

if TYPE_CHECKING:
    from llm3d_interfaces.msg import Object3D

    from llm3d_core.reasoner import Grounded


def grounded_to_object3d(obj: Grounded) -> Object3D:
    """A grounded box (6,) = min xyz, max xyz -> Object3D (centre pose with identity orientation + full size)."""
    from llm3d_interfaces.msg import Object3D  # here: the other conversions import without our interfaces built
    box = np.asarray(obj.box, dtype=np.float64).reshape(6)
    if not np.all(np.isfinite(box)):
        raise ConversionError(f"object {obj.id}: box {box.tolist()} is not finite")
    centre, size = (box[:3] + box[3:]) / 2, np.maximum(box[3:] - box[:3], 0.0)
    msg = Object3D(id=int(obj.id), label=obj.label, score=float(obj.score))
    msg.center.position.x, msg.center.position.y, msg.center.position.z = (float(v) for v in centre)
    msg.center.orientation.w = 1.0
    msg.size = Vector3(x=float(size[0]), y=float(size[1]), z=float(size[2]))
    return msg


def object3d_box(msg: Object3D) -> np.ndarray:
    """Object3D -> box (6,) min xyz, max xyz (the orientation is taken as identity: boxes are axis-aligned)."""
    c, s = msg.center.position, msg.size
    centre, half = np.array([c.x, c.y, c.z]), np.array([s.x, s.y, s.z]) / 2
    return np.concatenate([centre - half, centre + half])
