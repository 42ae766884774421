"""Message builders and parsers of the sim bridge: camera info, depth images, odometry, cmd_vel, goals.

Like `llm3d_ros.conversions` (whose image and transform helpers these build on), nothing here
needs a running graph: tests build and read the messages in memory. These are kept next to the
node until another node needs them; they then belong in `llm3d_ros.conversions`.
"""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from llm3d_core.messages import quaternion_to_yaw
from llm3d_ros.conversions import ConversionError, matrix_to_transform, normalize_quaternion, numpy_to_image

UINT16_NO_RETURN = 0  # 16UC1 depth: 0 marks "no measurement" (REP 118 uses NaN for 32FC1; 0 is also accepted)


def camera_info_from_K(K: np.ndarray, width: int, height: int, frame_id: str, stamp: Time | None = None) -> CameraInfo:
    """(3, 3) pinhole intrinsics of an undistorted camera -> CameraInfo (plumb_bob, zero distortion).

    P = [K | 0] and R = I: a monocular camera whose images are already rectified, as simulated
    images are.
    """
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ConversionError(f"K must be a finite 3x3 matrix with fx, fy > 0, got {K.tolist()}")
    if width <= 0 or height <= 0:
        raise ConversionError(f"camera size must be positive, got {width}x{height}")
    P = np.hstack([K, np.zeros((3, 1))])  # (3, 4)
    msg = CameraInfo(width=int(width), height=int(height), distortion_model="plumb_bob",
                     d=[0.0] * 5, k=K.ravel().tolist(), r=np.eye(3).ravel().tolist(), p=P.ravel().tolist())
    msg.header = Header(frame_id=frame_id, stamp=stamp or Time())
    return msg


def depth_to_image(depth_m: np.ndarray, encoding: str, depth_scale: float, frame_id: str,
                   stamp: Time | None = None) -> Image:
    """(H, W) float metres (0 = invalid) -> a 16UC1 (units of 1/depth_scale m) or 32FC1 (m) Image.

    16UC1 rounds to the nearest unit; depths that do not fit (or are not finite) become 0, the
    "no return" value the mapper already ignores.
    """
    depth_m = np.asarray(depth_m, np.float32)
    if depth_m.ndim != 2:
        raise ConversionError(f"depth must be (H, W), got shape {depth_m.shape}")
    if encoding == "32FC1":
        clean = np.where(np.isfinite(depth_m) & (depth_m > 0), depth_m, 0.0).astype(np.float32)
        return numpy_to_image(clean, "32FC1", frame_id, stamp)
    if encoding != "16UC1":
        raise ConversionError(f"depth encoding must be 16UC1 or 32FC1, got {encoding!r}")
    if not (math.isfinite(depth_scale) and depth_scale > 0):
        raise ConversionError(f"depth_scale must be a finite number > 0, got {depth_scale}")
    units = np.rint(np.nan_to_num(depth_m, nan=0.0, posinf=0.0, neginf=0.0) * np.float32(depth_scale))  # (H, W)
    units[(units < 0) | (units >= np.iinfo(np.uint16).max)] = UINT16_NO_RETURN
    return numpy_to_image(units.astype(np.uint16), "16UC1", frame_id, stamp)


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
