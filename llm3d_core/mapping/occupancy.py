"""Top-down occupancy grid from map points, in the nav_msgs/OccupancyGrid convention.

Cells: -1 unknown, 0 free, 100 occupied. A cell is occupied when a surface point lies between
`floor_z + clearance` and `floor_z + robot_height` (an obstacle the robot would hit), free when
only floor points fall in it. Index [row, col] = [y, x] from `origin` (the grid's min corner).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNKNOWN, FREE, OCCUPIED = -1, 0, 100


@dataclass
class OccupancyGrid:
    data: np.ndarray  # (rows, cols) int8
    origin: np.ndarray  # (2,) world x, y of cell [0, 0]'s corner
    cell: float  # metres

    def world_to_cell(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) world x, y -> (N, 2) integer [row, col]."""
        ij = np.floor((np.asarray(xy)[:, :2] - self.origin) / self.cell).astype(np.int64)
        return ij[:, ::-1]

    def cell_to_world(self, rc: np.ndarray) -> np.ndarray:
        """(N, 2) [row, col] -> (N, 2) world x, y of cell centres."""
        rc = np.asarray(rc)
        return self.origin + (rc[:, ::-1] + 0.5) * self.cell

    def inside(self, rc: np.ndarray) -> np.ndarray:
        rc = np.asarray(rc)
        return (rc[:, 0] >= 0) & (rc[:, 0] < self.data.shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < self.data.shape[1])


def occupancy_from_points(points: np.ndarray, floor_z: float, robot_height: float, cell: float,
                          clearance: float = 0.1, extent_xy: np.ndarray | None = None) -> OccupancyGrid:
    """Builds the grid from (N, 3) world points with z up; extent_xy (M, 2) are positions the grid
    must also cover (unknown cells unless points fall there)."""
    if not cell > 0:
        raise ValueError(f"cell must be > 0, got {cell}")
    if not robot_height > clearance:
        raise ValueError(f"robot_height must exceed clearance {clearance}, got {robot_height}")
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    xy = points[:, :2]
    if extent_xy is not None:
        xy = np.concatenate([xy, np.asarray(extent_xy, dtype=np.float64).reshape(-1, 2)])
    if len(xy) == 0:
        return OccupancyGrid(np.full((1, 1), UNKNOWN, np.int8), np.zeros(2), cell)
    origin = xy.min(axis=0) - cell
    shape = np.ceil((xy.max(axis=0) + cell - origin) / cell).astype(int)[::-1] + 1  # rows, cols
    grid = np.full(shape, UNKNOWN, np.int8)
    rc = np.floor((points[:, :2] - origin) / cell).astype(np.int64)[:, ::-1]
    z = points[:, 2] - floor_z
    floor = np.abs(z) < clearance
    obstacle = (z >= clearance) & (z <= robot_height)
    grid[rc[floor, 0], rc[floor, 1]] = FREE
    grid[rc[obstacle, 0], rc[obstacle, 1]] = OCCUPIED
    return OccupancyGrid(grid, origin, cell)
