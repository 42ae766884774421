"""Message conversions of the `llm3d_reasoner` node and its client (tested without a running graph)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseStamped, Vector3
from llm3d_interfaces.msg import Object3D
from visualization_msgs.msg import MarkerArray

from llm3d_core.mapping.goals import GoalPose
from llm3d_core.messages import yaw_to_quaternion
from llm3d_core.reasoner import Grounded
from llm3d_ros.conversions import ConversionError, objects_to_markers


def grounded_to_object3d(obj: Grounded) -> Object3D:
    """A grounded box (6,) = min xyz, max xyz -> Object3D (centre pose with identity orientation + full size)."""
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


def goal_to_pose_stamped(goal: GoalPose, frame_id: str, stamp: Time | None = None) -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id, msg.header.stamp = frame_id, stamp or Time()
    msg.pose = Pose()
    msg.pose.position.x, msg.pose.position.y = float(goal.x), float(goal.y)
    q = yaw_to_quaternion(goal.yaw)
    msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = q
    return msg


@dataclass
class _Labelled:
    """What objects_to_markers draws: ranks as ids, so a model-only box (id -1) gets a valid marker id."""

    id: int
    label: str
    box_min: np.ndarray
    box_max: np.ndarray


def grounding_markers(query: str, results: Sequence[Grounded], frame_id: str, stamp: Time | None = None
                      ) -> MarkerArray:
    """Boxes of a grounding result, labelled '<rank>. <label> #<id> (<score>)'; DELETEALL first."""
    shown = [_Labelled(rank, f"{query}: {g.label or 'object'} #{g.id} ({g.score:.2f})",
                       np.asarray(g.box[:3]), np.asarray(g.box[3:])) for rank, g in enumerate(results)]
    return objects_to_markers(shown, frame_id, stamp, style="line_list", namespace="llm3d_grounding")
