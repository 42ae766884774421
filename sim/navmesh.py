"""The navigable grid of a scene and geodesic (shortest-path) distances on it.

The grid is rasterised from the mesh: a cell is an obstacle when any surface lies over it between
`obstacle_min_z` and the robot `height` above the floor (triangles are clipped to that band and
their footprints filled); floor cells come from near-horizontal triangles at floor height. A cell
is navigable when it is floor and farther than the robot radius from every blocked cell.

Geodesic distances are minimum-cost paths on the 8-connected navigable grid computed with
scikit-image's `MCP_Geometric` (diagonal steps cost sqrt(2) cells). They are what SPL
(Anderson et al. 2018, "On Evaluation of Embodied Navigation Agents") divides by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.draw import line, polygon
from skimage.graph import MCP_Geometric

from llm3d_core.mapping.occupancy import FREE, OCCUPIED, UNKNOWN, OccupancyGrid
from sim.config import AgentConfig
from sim.scenes.scene import SceneMesh


def _clip_band(tri: np.ndarray, zlo: float, zhi: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a (3, 3) triangle to zlo <= z <= zhi; (K, 3) polygon, maybe empty."""
    poly = list(tri)
    for sign, bound in ((1.0, zlo), (-1.0, zhi)):  # keep sign * (z - bound) >= 0
        out = []
        for i, cur in enumerate(poly):
            prev = poly[i - 1]
            dc, dp = sign * (cur[2] - bound), sign * (prev[2] - bound)
            if dc >= 0:
                if dp < 0:
                    out.append(prev + (cur - prev) * (dp / (dp - dc)))
                out.append(cur)
            elif dp >= 0:
                out.append(prev + (cur - prev) * (dp / (dp - dc)))
        poly = out
        if not poly:
            break
    return np.array(poly).reshape(-1, 3)


def detect_floor_z(mesh: SceneMesh) -> float:
    """Height of the floor: the 2 cm bin holding most area of upward-facing horizontal faces."""
    normals = mesh.face_normals()
    tri = mesh.vertices[mesh.faces].astype(np.float64)  # (F, 3, 3)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    horizontal = np.abs(normals[:, 2]) > 0.95
    if not horizontal.any():
        return float(mesh.vertices[:, 2].min())
    z = tri[horizontal, :, 2].mean(1)
    bins = np.round(z / 0.02).astype(np.int64)
    uniq, inv = np.unique(bins, return_inverse=True)
    weight = np.bincount(inv, weights=area[horizontal])
    return float(uniq[np.argmax(weight)] * 0.02)


@dataclass
class NavGrid:
    """Navigation grid; index [row, col] = [y, x] from `origin` (the grid's min corner), like OccupancyGrid."""

    origin: np.ndarray  # (2,) world x, y of cell [0, 0]'s corner
    cell: float  # metres
    floor: np.ndarray  # (rows, cols) bool: floor surface present
    obstacle: np.ndarray  # (rows, cols) bool: geometry in the robot's height band
    navigable: np.ndarray  # (rows, cols) bool: the robot's centre may be here
    floor_z: float = 0.0
    clearance: np.ndarray | None = None  # (rows, cols) metres from the cell to the nearest surface
    _components: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.navigable.shape

    def world_to_cell(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) world x, y -> (N, 2) integer [row, col]."""
        ij = np.floor((np.asarray(xy, np.float64).reshape(-1, 2) - self.origin) / self.cell).astype(np.int64)
        return ij[:, ::-1]

    def cell_to_world(self, rc: np.ndarray) -> np.ndarray:
        """(N, 2) [row, col] -> (N, 2) world x, y of cell centres."""
        rc = np.asarray(rc).reshape(-1, 2)
        return self.origin + (rc[:, ::-1] + 0.5) * self.cell

    def inside(self, rc: np.ndarray) -> np.ndarray:
        rc = np.asarray(rc).reshape(-1, 2)
        return (rc[:, 0] >= 0) & (rc[:, 0] < self.shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < self.shape[1])

    def is_navigable(self, xy: np.ndarray) -> np.ndarray:
        """(N,) bool for (N, 2) world points; outside the grid is not navigable."""
        rc = self.world_to_cell(xy)
        ok = self.inside(rc)
        out = np.zeros(len(rc), bool)
        out[ok] = self.navigable[rc[ok, 0], rc[ok, 1]]
        return out

    def occupancy(self) -> OccupancyGrid:
        """The nav_msgs-style grid of llm3d_core (-1 unknown / off-floor, 0 free, 100 obstacle)."""
        data = np.full(self.shape, UNKNOWN, np.int8)
        data[self.floor] = FREE
        data[self.obstacle] = OCCUPIED
        return OccupancyGrid(data, self.origin.copy(), self.cell)

    def components(self) -> np.ndarray:
        """(rows, cols) int labels of 8-connected navigable regions (0 = not navigable)."""
        if self._components is None:
            self._components, _ = ndimage.label(self.navigable, structure=np.ones((3, 3)))
        return self._components

    def largest_component(self) -> np.ndarray:
        """(rows, cols) bool mask of the biggest navigable region."""
        labels = self.components()
        if labels.max() == 0:
            raise ValueError("the scene has no navigable cell for this robot (radius/height too large?)")
        counts = np.bincount(labels.ravel())
        counts[0] = 0
        return labels == int(np.argmax(counts))

    def sample_navigable(self, rng: np.random.Generator, mask: np.ndarray | None = None) -> np.ndarray:
        """A random world (x, y) at a navigable cell centre (of `mask`, default the largest region)."""
        mask = self.largest_component() if mask is None else mask
        cells = np.argwhere(mask)
        if len(cells) == 0:
            raise ValueError("no navigable cell to sample from")
        return self.cell_to_world(cells[rng.integers(len(cells))])[0]

    def snap(self, xy: np.ndarray, max_cells: int = 2) -> np.ndarray | None:
        """The [row, col] of the navigable cell nearest to `xy` within `max_cells`, or None."""
        rc = self.world_to_cell(xy)[0]
        best, best_d = None, math.inf
        for dr in range(-max_cells, max_cells + 1):
            for dc in range(-max_cells, max_cells + 1):
                r, c = rc[0] + dr, rc[1] + dc
                if 0 <= r < self.shape[0] and 0 <= c < self.shape[1] and self.navigable[r, c] and dr * dr + dc * dc < best_d:
                    best, best_d = np.array([r, c]), dr * dr + dc * dc
        return best

    def planning_costs(self, margin: float = 0.1, penalty: float = 4.0) -> np.ndarray:
        """Per-cell costs that make paths keep `margin` beyond the radius where they can (-1: impassable)."""
        costs = np.where(self.navigable, 1.0, -1.0)
        if self.clearance is not None and self.navigable.any():
            tight = self.navigable & (self.clearance < self.clearance[self.navigable].min() + margin)
            costs[tight] = penalty
        return costs

    def distance_field(self, goal_cells: np.ndarray, costs: np.ndarray | None = None) -> DistanceField:
        """Geodesic distance (metres) from every cell to the nearest of `goal_cells` (K, 2).

        `costs` (default: 1 on navigable cells) weights cells, e.g. `planning_costs()` for a
        controller; metres are then cost-weighted and no longer plain path lengths.
        """
        goal_cells = np.asarray(goal_cells, np.int64).reshape(-1, 2)
        goal_cells = goal_cells[self.navigable[goal_cells[:, 0], goal_cells[:, 1]]] if len(goal_cells) else goal_cells
        if len(goal_cells) == 0:
            return DistanceField(self, np.full(self.shape, np.inf), None)
        if costs is None:
            costs = np.where(self.navigable, 1.0, -1.0)  # negative cost: impassable for MCP
        mcp = MCP_Geometric(costs, fully_connected=True)
        cumulative, _ = mcp.find_costs([tuple(c) for c in goal_cells])
        return DistanceField(self, cumulative * self.cell, mcp)

    def geodesic_distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """Shortest navigable path length from world xy `a` to `b`; math.inf when unreachable.

        Grid distance between the two cell centres plus each point's offset to its centre, so the
        result is never below the straight-line distance (triangle inequality).
        """
        a, b = np.asarray(a, float)[:2], np.asarray(b, float)[:2]
        ca, cb = self.snap(a), self.snap(b)
        if ca is None or cb is None:
            return math.inf
        d = self.distance_field(cb[None]).at_cell(ca)
        if not math.isfinite(d):
            return math.inf
        return d + float(np.linalg.norm(a - self.cell_to_world(ca)[0]) + np.linalg.norm(b - self.cell_to_world(cb)[0]))

    def shortest_path(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
        """(N, 2) world xy of cell centres along a shortest path from a to b, or None if unreachable."""
        ca, cb = self.snap(np.asarray(a, float)[:2]), self.snap(np.asarray(b, float)[:2])
        if ca is None or cb is None:
            return None
        field_ = self.distance_field(ca[None])
        return field_.path_to(cb)


@dataclass
class DistanceField:
    grid: NavGrid
    metres: np.ndarray  # (rows, cols) geodesic metres to the goal set, inf where unreachable
    _mcp: MCP_Geometric | None

    def at_cell(self, rc: np.ndarray) -> float:
        return float(self.metres[int(rc[0]), int(rc[1])])

    def at(self, xy: np.ndarray) -> float:
        """Distance from world xy (snapped to the nearest navigable cell); inf if none is near."""
        rc = self.grid.snap(np.asarray(xy, float)[:2])
        return math.inf if rc is None else self.at_cell(rc)

    def path_to(self, rc: np.ndarray) -> np.ndarray | None:
        """(N, 2) world xy from the goal set (the field's sources) to cell `rc`, or None if unreachable."""
        if self._mcp is None or not math.isfinite(self.at_cell(rc)):
            return None
        cells = np.array(self._mcp.traceback(tuple(int(v) for v in rc)))  # (N, 2) source -> rc
        return self.grid.cell_to_world(cells)


def build_navgrid(mesh: SceneMesh, agent: AgentConfig, floor_z: float | None = None) -> NavGrid:
    """Rasterises the scene mesh into a NavGrid for a robot described by `agent`."""
    cell = agent.grid_cell
    floor_z = detect_floor_z(mesh) if floor_z is None else floor_z
    verts = mesh.vertices.astype(np.float64)
    origin = verts[:, :2].min(0) - 2 * cell
    shape = tuple(np.ceil((verts[:, :2].max(0) + 2 * cell - origin) / cell).astype(int)[::-1])  # rows, cols
    floor = np.zeros(shape, bool)
    obstacle = np.zeros(shape, bool)
    tri = verts[mesh.faces]  # (F, 3, 3)
    normals = mesh.face_normals()
    zlo, zhi = floor_z + agent.obstacle_min_z, floor_z + agent.height
    tz_min, tz_max = tri[:, :, 2].min(1), tri[:, :, 2].max(1)

    def to_rc(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rc = (xy - origin) / cell  # continuous (x, y) in cells
        return rc[:, 1], rc[:, 0]

    def fill(target: np.ndarray, poly_xy: np.ndarray) -> None:
        r, c = to_rc(poly_xy)
        rr, cc = polygon(r, c, shape)
        target[rr, cc] = True
        # Edges too: vertical faces project to segments that a polygon fill misses.
        ri, ci = np.floor(r).astype(int), np.floor(c).astype(int)
        for i in range(len(ri)):
            lr, lc = line(ri[i - 1], ci[i - 1], ri[i], ci[i])
            ok = (lr >= 0) & (lr < shape[0]) & (lc >= 0) & (lc < shape[1])
            target[lr[ok], lc[ok]] = True

    is_floor = (np.abs(normals[:, 2]) > 0.9) & (np.abs(tz_max - floor_z) < 0.05) & (np.abs(tz_min - floor_z) < 0.05)
    for t in tri[is_floor]:
        fill(floor, t[:, :2])
    in_band = (tz_max >= zlo) & (tz_min <= zhi)
    for t in tri[in_band]:
        poly = _clip_band(t, zlo, zhi)
        if len(poly):
            fill(obstacle, poly[:, :2])
    blocked = obstacle | ~floor
    # metres from each cell centre to the nearest blocked cell's centre, less half a cell because the
    # surface may lie anywhere inside that cell: the robot body then never reaches a surface.
    clearance = ndimage.distance_transform_edt(~blocked) * cell - 0.5 * cell
    navigable = clearance > agent.radius
    return NavGrid(origin, cell, floor, obstacle, navigable, floor_z, clearance)
