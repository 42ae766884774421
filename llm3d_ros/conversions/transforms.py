"""Transforms, poses, odometry, velocity commands and goal poses (REP 103/105; quaternions (x, y, z, w))."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseStamped, Transform, TransformStamped, Twist
from nav_msgs.msg import Odometry
from std_msgs.msg import Header

from llm3d_core.messages import (ConversionError, compose_matrix, matrix_to_quaternion, normalize_quaternion, quaternion_to_yaw,
                                 yaw_to_quaternion)

if TYPE_CHECKING:
    from llm3d_core.mapping.goals import GoalPose


def matrix_to_transform(T: np.ndarray) -> Transform:
    """(4, 4) rigid transform -> geometry_msgs/Transform; non-finite or non-rigid input raises."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ConversionError(f"transform must be a finite 4x4 matrix, got shape {T.shape}")
    R = T[:3, :3]
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or abs(np.linalg.det(R) - 1.0) > 1e-3:
        raise ConversionError(f"transform rotation is not orthonormal with det +1 (det={np.linalg.det(R):.4f})")
    msg = Transform()
    msg.translation.x, msg.translation.y, msg.translation.z = (float(v) for v in T[:3, 3])
    q = matrix_to_quaternion(R)
    msg.rotation.x, msg.rotation.y, msg.rotation.z, msg.rotation.w = (float(v) for v in q)
    return msg


def matrix_to_transform_stamped(T: np.ndarray, parent_frame: str, child_frame: str, stamp: Time | None = None
                                ) -> TransformStamped:
    """(4, 4) pose of `child_frame` in `parent_frame` -> TransformStamped (what /tf carries)."""
    msg = TransformStamped(child_frame_id=child_frame, transform=matrix_to_transform(T))
    msg.header = Header(frame_id=parent_frame, stamp=stamp or Time())
    return msg


def pose_to_matrix(pose: Any) -> np.ndarray:
    """geometry_msgs/Pose -> (4, 4). An all-zero orientation (a marker left uninitialised) is the
    identity, as RViz takes it."""
    p, q = pose.position, pose.orientation
    quaternion = (q.x, q.y, q.z, q.w) if (q.x, q.y, q.z, q.w) != (0.0, 0.0, 0.0, 0.0) else (0.0, 0.0, 0.0, 1.0)
    return compose_matrix((p.x, p.y, p.z), quaternion)


def goal_to_pose_stamped(goal: GoalPose, frame_id: str, stamp: Time | None = None) -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id, msg.header.stamp = frame_id, stamp or Time()
    msg.pose = Pose()
    msg.pose.position.x, msg.pose.position.y = float(goal.x), float(goal.y)
    q = yaw_to_quaternion(goal.yaw)
    msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = q
    return msg


def odometry_msg(T_odom_base: np.ndarray, linear_x: float, angular_z: float, odom_frame: str, base_frame: str,
                 stamp: Time | None = None) -> Odometry:
    """Pose of the base in the odom frame (4x4) + its body-frame velocity -> nav_msgs/Odometry.

    Covariances stay zero: the simulator's odometry is exact unless drift is configured, and then
    its spread is a config value, not an estimate.
    """
    tf = matrix_to_transform(T_odom_base)  # validates finiteness and rigidity
    msg = Odometry(child_frame_id=base_frame)
    msg.header = Header(frame_id=odom_frame, stamp=stamp or Time())
    msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z = (
        tf.translation.x, tf.translation.y, tf.translation.z)
    msg.pose.pose.orientation = tf.rotation
    msg.twist.twist.linear.x = float(linear_x)
    msg.twist.twist.angular.z = float(angular_z)
    return msg


def twist_to_command(msg: Twist, max_linear: float, max_angular: float) -> tuple[float, float]:
    """cmd_vel -> (v m/s, omega rad/s) for a differential drive, clipped to the limits.

    Only linear.x and angular.z act (a planar differential drive); non-finite values raise, so a
    NaN from a broken planner stops nothing and moves nothing: the caller ignores the message.
    """
    values = (msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z)
    if not all(math.isfinite(v) for v in values):
        raise ConversionError(f"cmd_vel has non-finite components: linear ({msg.linear.x}, {msg.linear.y}, "
                              f"{msg.linear.z}), angular ({msg.angular.x}, {msg.angular.y}, {msg.angular.z})")
    v = min(max(float(msg.linear.x), -max_linear), max_linear)
    omega = min(max(float(msg.angular.z), -max_angular), max_angular)
    return v, omega


def goal_from_pose_stamped(msg: PoseStamped, map_frame: str) -> tuple[float, float, float | None]:
    """A goal_pose in the map frame -> (x, y, yaw), yaw None when the orientation is unset.

    An all-zero quaternion (what a hand-written PoseStamped carries) means "any heading"; any
    other orientation must be a valid quaternion and gives the heading about z. A wrong or
    empty frame raises: the bridge has no TF tree to transform goals with, and guessing the
    frame would drive the robot somewhere else.
    """
    if msg.header.frame_id != map_frame:
        raise ConversionError(f"goal frame_id is '{msg.header.frame_id}', expected '{map_frame}' "
                              "(goals are taken in the map frame only)")
    p, o = msg.pose.position, msg.pose.orientation
    if not all(math.isfinite(v) for v in (p.x, p.y, p.z)):
        raise ConversionError(f"goal position ({p.x}, {p.y}, {p.z}) is not finite")
    q = (o.x, o.y, o.z, o.w)
    if all(v == 0.0 for v in q):
        return float(p.x), float(p.y), None
    return float(p.x), float(p.y), quaternion_to_yaw(*normalize_quaternion(q))  # raises for non-finite ones
