"""Where a navigation record's goal may lie: navigable cells near the target, facing it.

Shared by the data generator's navigation records and the demo's shortest-path reference, so the
benchmark's "reachable" means what training's goals mean.
"""

from __future__ import annotations

import numpy as np

from sim.navmesh import NavGrid
from sim.scenes.scene import Instance


def goal_cells(grid: NavGrid, inst: Instance, radius: float, region: np.ndarray) -> np.ndarray:
    """(K, 2) [row, col] of navigable cells of `region` whose centres lie within `radius` of the box footprint
    (and at least 0.2 m from it, so the robot stops facing the object, not touching it)."""
    lo, hi = inst.box_min[:2], inst.box_max[:2]
    r0, c0 = grid.world_to_cell(lo - radius)[0]
    r1, c1 = grid.world_to_cell(hi + radius)[0]
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1, grid.shape[0] - 1), min(c1, grid.shape[1] - 1)
    if r1 < r0 or c1 < c0:
        return np.zeros((0, 2), np.int64)
    rows, cols = np.mgrid[r0:r1 + 1, c0:c1 + 1]
    cells = np.stack([rows.ravel(), cols.ravel()], 1)
    cells = cells[region[cells[:, 0], cells[:, 1]]]
    centres = grid.cell_to_world(cells)
    gap = np.linalg.norm(np.maximum(np.maximum(lo - centres, centres - hi), 0.0), axis=1)
    return cells[(gap <= radius - 0.01) & (gap >= 0.2)]


def goal_heading(goal: list[float], box: list[float]) -> float:
    """Yaw (radians, world frame) that makes a robot at `goal` face the centre of `box`."""
    cx, cy = (box[0] + box[3]) / 2, (box[1] + box[4]) / 2
    return float(np.arctan2(cy - goal[1], cx - goal[0]))
