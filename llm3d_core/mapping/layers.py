"""What RViz shows of a running llm3d stack, as plain arrays: the layers `llm3d snapshot` draws.

No rclpy here: `llm3d_ros.snapshot` fills `MapLayers` from the topics of launch/llm3d.rviz, and
`llm3d_core.mapping.render.layers_png` draws them, so the drawing is tested without a ROS graph.
Everything is in one fixed frame (the map frame, z up); poses are (x, y, yaw).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from llm3d_core.mapping.occupancy import OccupancyGrid


@dataclass
class LabelledBox:
    """An axis-aligned box of a MarkerArray with its label (a TEXT marker alone: min == max)."""

    box_min: np.ndarray  # (3,)
    box_max: np.ndarray  # (3,)
    label: str = ""
    color: tuple[float, float, float] = (0.1, 0.6, 0.9)

    def transformed(self, T: np.ndarray) -> "LabelledBox":
        """The axis-aligned box around this box's 8 corners moved by the 4x4 transform T."""
        lo, hi = np.asarray(self.box_min, np.float64), np.asarray(self.box_max, np.float64)
        corners = np.array([np.where([(i >> k) & 1 for k in range(3)], hi, lo) for i in range(8)])  # (8, 3)
        moved = corners @ T[:3, :3].T + T[:3, 3]  # (8, 3)
        return LabelledBox(moved.min(axis=0), moved.max(axis=0), self.label, self.color)


def _empty(columns: int) -> np.ndarray:
    return np.zeros((0, columns), np.float32)


@dataclass
class MapLayers:
    """The layers of launch/llm3d.rviz in `frame`; a layer that did not arrive stays empty / None.

    Fields:
        occupancy: the mapper's occupancy grid (nav_msgs values: -1 unknown, 0 free, 100 occupied).
        points, colors: (N, 3) map cloud and its colours in [0, 1].
        objects: the mapper's object boxes with their labels.
        grounding: the reasoner's latest grounding result.
        trajectory: (T, 3) the robot's driven path.
        goal: the latest navigation goal (x, y, yaw).
        robot: the robot's pose from TF (x, y, yaw).
        frame: the fixed frame everything is in.
    """

    occupancy: OccupancyGrid | None = None
    points: np.ndarray = field(default_factory=lambda: _empty(3))
    colors: np.ndarray = field(default_factory=lambda: _empty(3))
    objects: list[LabelledBox] = field(default_factory=list)
    grounding: list[LabelledBox] = field(default_factory=list)
    trajectory: np.ndarray = field(default_factory=lambda: _empty(3))
    goal: tuple[float, float, float] | None = None
    robot: tuple[float, float, float] | None = None
    frame: str = "map"

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, np.float32).reshape(-1, 3)
        self.colors = np.asarray(self.colors, np.float32).reshape(-1, 3)
        self.trajectory = np.asarray(self.trajectory, np.float32).reshape(-1, 3)
        if len(self.points) != len(self.colors):
            raise ValueError(f"MapLayers: {len(self.points)} points but {len(self.colors)} colours")

    def summary(self) -> str:
        """One line: what each layer holds, e.g. 'map 120x96 @ 0.05 m, cloud 41234 points, 9 objects, ...'."""
        grid = self.occupancy
        parts = [f"map {grid.data.shape[1]}x{grid.data.shape[0]} @ {grid.cell:g} m" if grid is not None else "map none",
                 f"cloud {len(self.points)} points", f"{len(self.objects)} objects",
                 f"grounding {len(self.grounding)}", f"trajectory {len(self.trajectory)} poses",
                 f"goal {_pose_text(self.goal)}", f"robot {_pose_text(self.robot)}"]
        return ", ".join(parts)

    def bounds_xy(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(min xy, max xy) over every layer, or None when all are empty."""
        xy = [self.points[:, :2], self.trajectory[:, :2]]
        xy += [np.array([b.box_min[:2], b.box_max[:2]]) for b in self.objects + self.grounding]
        xy += [np.array([pose[:2]]) for pose in (self.goal, self.robot) if pose is not None]
        grid = self.occupancy
        if grid is not None:
            xy.append(np.array([grid.origin, grid.origin + np.array(grid.data.shape[::-1]) * grid.cell]))
        stacked = np.concatenate([np.asarray(a, np.float64).reshape(-1, 2) for a in xy])
        stacked = stacked[np.isfinite(stacked).all(axis=1)]
        if not len(stacked):
            return None
        return stacked.min(axis=0), stacked.max(axis=0)


def _pose_text(pose: tuple[float, float, float] | None) -> str:
    if pose is None:
        return "none"
    x, y, yaw = pose
    return f"({x:.2f}, {y:.2f}, {math.degrees(yaw):.0f} deg)"
