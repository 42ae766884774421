"""Nav2-shaped messages: action goal status, occupancy grids and paths, both ways."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Header

from llm3d_core.messages import ConversionError, stamp_to_ns
from llm3d_ros.conversions.transforms import pose_to_matrix

if TYPE_CHECKING:
    from action_msgs.msg import GoalStatusArray
    from nav_msgs.msg import OccupancyGrid, Path

    from llm3d_core.mapping.occupancy import OccupancyGrid as CoreOccupancyGrid


def goal_status_array(goals: Iterable[tuple[int, Time, int]]) -> "GoalStatusArray":
    """Goals a base knows as action_msgs/GoalStatusArray (Nav2's action status shape): each
    (goal number -> its 16-byte id, the goal's own stamp, a GoalStatus.STATUS_* value)."""
    from action_msgs.msg import GoalStatus, GoalStatusArray

    entries = []
    for number, stamp, status in goals:
        entry = GoalStatus(status=int(status))
        entry.goal_info.goal_id.uuid = np.frombuffer(int(number).to_bytes(16, "big"), np.uint8)
        entry.goal_info.stamp = stamp
        entries.append(entry)
    return GoalStatusArray(status_list=entries)


def newest_goal_status(msg: "GoalStatusArray", since_ns: int) -> int | None:
    """Status of the newest goal stamped at or after `since_ns` (ns), or None when there is none.

    Goals stamped before `since_ns` are someone else's earlier goals: their endings say nothing
    about the goal published at `since_ns`."""
    newest: tuple[int, int] | None = None
    for entry in msg.status_list:
        ns = stamp_to_ns(entry.goal_info.stamp)
        if ns >= since_ns and (newest is None or ns >= newest[0]):
            newest = (ns, int(entry.status))
    return None if newest is None else newest[1]


def occupancy_grid_msg(values: np.ndarray, origin_xy: np.ndarray, cell: float, floor_z: float, frame_id: str,
                       stamp: Time | None = None) -> "OccupancyGrid":
    """(rows, cols) int8 nav_msgs values (row = y, col = x; -1 unknown, 0 free, 100 occupied) whose
    cell [0, 0] has its corner at origin_xy -> nav_msgs/OccupancyGrid, as Nav2's map server publishes."""
    from nav_msgs.msg import OccupancyGrid

    values = np.asarray(values)
    if values.ndim != 2 or values.dtype != np.int8:
        raise ConversionError(f"occupancy values must be a 2D int8 array, got {values.dtype} {values.shape}")
    if not (np.isfinite(cell) and cell > 0) or not np.isfinite(np.asarray(origin_xy, np.float64)).all():
        raise ConversionError(f"occupancy grid needs a positive cell and a finite origin, got {cell}, {origin_xy}")
    msg = OccupancyGrid()
    msg.header = Header(frame_id=frame_id, stamp=stamp if stamp is not None else Time())
    msg.info.map_load_time = msg.header.stamp
    msg.info.resolution = float(cell)
    msg.info.height, msg.info.width = (int(n) for n in values.shape)
    msg.info.origin.position.x, msg.info.origin.position.y = (float(v) for v in origin_xy)
    msg.info.origin.position.z = float(floor_z)
    msg.info.origin.orientation.w = 1.0
    msg.data = np.ascontiguousarray(values).ravel().tobytes()  # row-major from (0, 0), as nav_msgs wants
    return msg


def path_msg(positions: np.ndarray, frame_id: str, stamp: Time | None = None) -> "Path":
    """(T, 3) positions -> nav_msgs/Path; each pose faces the next position (the last keeps the
    previous heading), so RViz's Path display with pose axes shows the direction of travel."""
    from nav_msgs.msg import Path

    positions = np.asarray(positions, np.float64).reshape(-1, 3)
    if not np.isfinite(positions).all():
        raise ConversionError("path positions must be finite")
    header = Header(frame_id=frame_id, stamp=stamp if stamp is not None else Time())
    step = np.diff(positions[:, :2], axis=0)  # (T-1, 2)
    yaw = np.arctan2(step[:, 1], step[:, 0]) if len(step) else np.zeros(0)
    yaw = np.append(yaw, yaw[-1] if len(yaw) else 0.0)  # (T,)
    msg = Path(header=header)
    for (x, y, z), heading in zip(positions, yaw):
        pose = PoseStamped(header=header)
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = float(x), float(y), float(z)
        pose.pose.orientation.z, pose.pose.orientation.w = float(np.sin(heading / 2)), float(np.cos(heading / 2))
        msg.poses.append(pose)
    return msg


def occupancy_grid_from_msg(msg: "OccupancyGrid") -> "CoreOccupancyGrid":
    """nav_msgs/OccupancyGrid -> llm3d_core's grid (the inverse of occupancy_grid_msg): int8 values
    (rows, cols), row = y, col = x from the origin corner. A rotated origin is refused."""
    from llm3d_core.mapping.occupancy import OccupancyGrid as CoreOccupancyGrid

    info = msg.info
    rows, cols, cell = int(info.height), int(info.width), float(info.resolution)
    values = np.frombuffer(msg.data, dtype=np.int8) if len(msg.data) else np.zeros(0, np.int8)
    if values.size != rows * cols:
        raise ConversionError(f"OccupancyGrid has {values.size} cells, its info says {cols}x{rows}")
    if not (np.isfinite(cell) and cell > 0):
        raise ConversionError(f"OccupancyGrid resolution must be > 0, got {cell}")
    T = pose_to_matrix(info.origin)
    if abs(T[0, 1]) > 1e-6 or T[0, 0] < 0:
        raise ConversionError("OccupancyGrid origins rotated about z are not supported")
    return CoreOccupancyGrid(values.reshape(rows, cols).copy(), T[:2, 3].copy(), cell)


def path_to_xyz(msg: Any) -> np.ndarray:
    """nav_msgs/Path -> (T, 3) float64 positions, in the path's header frame."""
    return np.array([[p.pose.position.x, p.pose.position.y, p.pose.position.z] for p in msg.poses],
                    dtype=np.float64).reshape(-1, 3)
