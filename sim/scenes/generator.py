"""Procedural indoor scenes, deterministic from a seed.

Layout: 1-4 rectangular rooms side by side along x, sharing one depth, with a doorway in every
interior wall. Furniture stands on the floor (backs against walls, or free with a gap that
keeps the rooms passable); small objects rest on furniture tops ("on") or on shelf boards
("in"). Yaws are multiples of 90 degrees so the annotated axis-aligned boxes are tight, and
boxes are checked pairwise so nothing interpenetrates. Same seed + same config = same scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from sim.config import SceneConfig
from sim.scenes.catalog import CATALOG, FLOOR_RGB, PALETTE, SUPPORTS, WALL_RGB, Category, Surface, box
from sim.scenes.scene import Instance, Scene, split_of

_EPS = 1e-6


@dataclass
class _Rect:
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, o: _Rect, gap: float = 0.0) -> bool:
        return self.x0 < o.x1 + gap and o.x0 < self.x1 + gap and self.y0 < o.y1 + gap and o.y0 < self.y1 + gap

    def inside(self, o: _Rect, margin: float = 0.0) -> bool:
        return self.x0 >= o.x0 + margin and self.x1 <= o.x1 - margin and self.y0 >= o.y0 + margin and self.y1 <= o.y1 - margin


@dataclass
class _Placed:
    inst: Instance
    rect: _Rect
    surfaces: list[tuple[Surface, _Rect]]  # world rectangles of the object's surfaces


def _paint(mesh: trimesh.Trimesh, rgb: tuple[int, int, int]) -> trimesh.Trimesh:
    mesh.visual.face_colors = np.array([*rgb, 255], np.uint8)
    return mesh


def _colored(parts: list[tuple[trimesh.Trimesh, tuple[int, int, int]]]) -> trimesh.Trimesh:
    return trimesh.util.concatenate([_paint(m.copy(), c) for m, c in parts])


def _yaw_matrix(yaw_deg: float) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(np.radians(yaw_deg), (0, 0, 1))


class _Builder:
    """Places rooms and objects with one random generator; `scene()` assembles the result."""

    def __init__(self, seed: int, cfg: SceneConfig) -> None:
        self.rng = np.random.default_rng(seed)
        self.cfg = cfg
        self.allowed = [c for c in (cfg.categories or list(CATALOG))]
        self.geometry: list[tuple[str, trimesh.Trimesh]] = []
        self.placed: list[_Placed] = []
        self.rooms: list[_Rect] = []
        self.keep_clear: list[_Rect] = []  # doorway approaches
        self.doorways: list[dict] = []

    # -- structure -------------------------------------------------------------------------
    def layout(self) -> None:
        c, rng = self.cfg, self.rng
        n = int(rng.integers(c.min_rooms, c.max_rooms + 1))
        depth = float(rng.uniform(c.room_min_size, c.room_max_size))
        widths = rng.uniform(c.room_min_size, c.room_max_size, n)
        xs = np.concatenate([[0.0], np.cumsum(widths)])  # wall centre lines along x
        t, H = c.wall_thickness, c.wall_height
        X = float(xs[-1])
        floor = box(X / 2, depth / 2, -0.02, X + t, depth + t, 0.02)
        self.geometry.append(("inst_0_floor", _paint(floor, FLOOR_RGB)))
        walls = [box(X / 2, 0, 0, X + t, t, H), box(X / 2, depth, 0, X + t, t, H),
                 box(0, depth / 2, 0, t, depth + t, H), box(X, depth / 2, 0, t, depth + t, H)]
        for x in xs[1:-1]:  # interior walls with a doorway: two wall pieces and a lintel
            dy = float(rng.uniform(c.door_width / 2 + 0.4, depth - c.door_width / 2 - 0.4))
            y0, y1 = dy - c.door_width / 2, dy + c.door_width / 2
            walls += [box(x, y0 / 2, 0, t, y0, H), box(x, (y1 + depth) / 2, 0, t, depth - y1, H),
                      box(x, dy, c.door_height, t, c.door_width, H - c.door_height)]
            self.doorways.append({"center": [round(float(x), 4), round(dy, 4)], "width": c.door_width,
                                  "height": c.door_height, "wall_axis": "y"})
            self.keep_clear.append(_Rect(x - 0.9, y0 - 0.1, x + 0.9, y1 + 0.1))
        for i, wall in enumerate(walls):
            self.geometry.append((f"inst_0_wall{i}", _paint(wall, WALL_RGB)))
        self.rooms = [_Rect(xs[i] + t / 2, t / 2, xs[i + 1] - t / 2, depth - t / 2) for i in range(n)]

    # -- objects ---------------------------------------------------------------------------
    def _size(self, cat: Category) -> np.ndarray:
        return self.rng.uniform(cat.size_min, cat.size_max)

    def _add(self, cat: Category, size: np.ndarray, yaw: float, xy: tuple[float, float], z0: float, room: int,
             relation: str, support: int, color: str | None = None) -> _Placed:
        """Builds the object, turns it by `yaw`, puts its box's bottom centre at (x, y, z0)."""
        color = color or str(self.rng.choice(cat.colors))
        built = cat.build(*map(float, size), PALETTE[color])
        mesh = _colored(built.parts)
        R = _yaw_matrix(yaw)
        mesh.apply_transform(R)
        lo, hi = mesh.bounds
        shift = np.array([xy[0] - (lo[0] + hi[0]) / 2, xy[1] - (lo[1] + hi[1]) / 2, z0 - lo[2]])
        mesh.apply_translation(shift)
        lo, hi = mesh.bounds
        inst = Instance(len(self.placed) + 1, cat.name, color, lo.copy(), hi.copy(), PALETTE[color], float(yaw % 360),
                        room, relation, support)
        surfaces = []
        for s in built.surfaces:  # surfaces move with the object
            corners = np.array([[s.xy_min[0], s.xy_min[1], s.z], [s.xy_max[0], s.xy_max[1], s.z]])
            w = corners @ R[:3, :3].T + shift
            surfaces.append((Surface(float(w[0, 2]), (0, 0), (0, 0), s.max_height, s.relation),
                             _Rect(w[:, 0].min(), w[:, 1].min(), w[:, 0].max(), w[:, 1].max())))
        placed = _Placed(inst, _Rect(lo[0], lo[1], hi[0], hi[1]), surfaces)
        self.placed.append(placed)
        self.geometry.append((f"inst_{inst.id}_{cat.name}", mesh))
        return placed

    def _floor_free(self, rect: _Rect, room: int, ignore: int = -1) -> bool:
        if not rect.inside(self.rooms[room], -_EPS):
            return False
        if any(rect.overlaps(k) for k in self.keep_clear):
            return False
        gap = self.cfg.furniture_gap
        return not any(rect.overlaps(p.rect, 0.02 if p.inst.id == ignore else gap)
                       for p in self.placed if p.inst.support_relation == "floor")

    def place_floor(self, cat: Category, room: int, tries: int = 30) -> _Placed | None:
        rng, r = self.rng, self.rooms[room]
        for _ in range(tries):
            size = self._size(cat)
            against_wall = cat.placement == "wall" or (cat.placement in ("free", "any") and rng.random() < 0.3)
            if against_wall:
                side = int(rng.integers(4))  # 0: north (y max), 1: south, 2: west (x min), 3: east
                yaw = (0.0, 180.0, 90.0, 270.0)[side]
                w, d = (size[0], size[1]) if side < 2 else (size[1], size[0])  # world footprint
                if side < 2:
                    x = rng.uniform(r.x0 + w / 2, r.x1 - w / 2) if r.x1 - r.x0 > w else None
                    y = r.y1 - d / 2 - 0.01 if side == 0 else r.y0 + d / 2 + 0.01
                else:
                    y = rng.uniform(r.y0 + d / 2, r.y1 - d / 2) if r.y1 - r.y0 > d else None
                    x = r.x0 + w / 2 + 0.01 if side == 2 else r.x1 - w / 2 - 0.01
                if x is None or y is None:
                    continue
            else:
                yaw = float(rng.choice([0.0, 90.0, 180.0, 270.0]))
                w, d = (size[0], size[1]) if yaw in (0.0, 180.0) else (size[1], size[0])
                if r.x1 - r.x0 <= w + 1.2 or r.y1 - r.y0 <= d + 1.2:
                    continue
                x = rng.uniform(r.x0 + w / 2 + 0.6, r.x1 - w / 2 - 0.6)  # free objects keep a passage to the walls
                y = rng.uniform(r.y0 + d / 2 + 0.6, r.y1 - d / 2 - 0.6)
            if self._floor_free(_Rect(x - w / 2, y - d / 2, x + w / 2, y + d / 2), room):
                return self._add(cat, size, yaw, (x, y), 0.0, room, "floor", 0)
        return None

    def chairs_around(self, table: _Placed, n: int) -> int:
        """Puts up to `n` chairs against a table's sides, facing it."""
        if "chair" not in self.allowed:
            return 0
        cat, t, added = CATALOG["chair"], table.rect, 0
        own = {table.inst.id}
        for side in self.rng.permutation(4)[:n]:
            size = self._size(cat)
            yaw = (180.0, 0.0, 90.0, 270.0)[side]  # chair front (-y local) turned towards the table
            w, d = (size[0], size[1]) if side < 2 else (size[1], size[0])
            cx, cy = (t.x0 + t.x1) / 2, (t.y0 + t.y1) / 2
            x, y = {0: (cx, t.y0 - d / 2 - 0.03), 1: (cx, t.y1 + d / 2 + 0.03),
                    2: (t.x0 - w / 2 - 0.03, cy), 3: (t.x1 + w / 2 + 0.03, cy)}[int(side)]
            rect = _Rect(x - w / 2, y - d / 2, x + w / 2, y + d / 2)
            # the table and its own chairs may be close; everything else keeps the passage gap
            others_ok = not any(rect.overlaps(p.rect, 0.02 if p.inst.id in own else self.cfg.furniture_gap)
                                for p in self.placed if p.inst.support_relation == "floor")
            if rect.inside(self.rooms[table.inst.room]) and not any(rect.overlaps(k) for k in self.keep_clear) and others_ok:
                own.add(self._add(cat, size, yaw, (x, y), 0.0, table.inst.room, "floor", 0).inst.id)
                added += 1
        return added

    def place_small(self, cat: Category, tries: int = 25) -> _Placed | None:
        rng = self.rng
        surfaces = [(p, s, r) for p in self.placed for s, r in p.surfaces]
        if not surfaces:
            return None
        for _ in range(tries):
            p, s, r = surfaces[int(rng.integers(len(surfaces)))]
            size = self._size(cat)
            if size[2] > s.max_height:
                continue
            yaw = float(rng.choice([0.0, 90.0, 180.0, 270.0]))
            w, d = (size[0], size[1]) if yaw in (0.0, 180.0) else (size[1], size[0])
            if r.x1 - r.x0 < w + 0.04 or r.y1 - r.y0 < d + 0.04:
                continue
            x = rng.uniform(r.x0 + w / 2 + 0.02, r.x1 - w / 2 - 0.02)
            y = rng.uniform(r.y0 + d / 2 + 0.02, r.y1 - d / 2 - 0.02)
            rect = _Rect(x - w / 2, y - d / 2, x + w / 2, y + d / 2)
            same = [q for q in self.placed if q.inst.support_id == p.inst.id and abs(q.inst.box_min[2] - s.z) < 1e-3]
            if any(rect.overlaps(q.rect, 0.03) for q in same):
                continue
            return self._add(cat, size, yaw, (x, y), s.z, p.inst.room, s.relation, p.inst.id)
        return None

    def populate(self, n_target: int) -> None:
        rng = self.rng
        floor_cats = [c for c in self.allowed if CATALOG[c].placement in ("wall", "free", "any")]
        small_cats = [c for c in self.allowed if CATALOG[c].placement in ("surface", "any")]
        supports = [c for c in floor_cats if c in SUPPORTS]
        n_floor = max(len(self.rooms) * 2, int(round(n_target * rng.uniform(0.35, 0.5))))
        for room in range(len(self.rooms)):  # every room gets furniture that can hold small objects
            for name in rng.permutation(supports)[:2] if supports else []:
                placed = self.place_floor(CATALOG[str(name)], room)
                if placed is not None and placed.inst.category == "table":
                    self.chairs_around(placed, int(rng.integers(0, 3)))
        misses = 0
        while sum(p.inst.support_relation == "floor" for p in self.placed) < n_floor and misses < 40 and floor_cats:
            placed = self.place_floor(CATALOG[str(rng.choice(floor_cats))], int(rng.integers(len(self.rooms))), tries=10)
            misses += placed is None
            if placed is not None and placed.inst.category == "table" and len(self.placed) < n_target:
                self.chairs_around(placed, int(rng.integers(0, 3)))
        misses = 0
        while len(self.placed) < n_target and misses < 60:
            cats = small_cats if small_cats and (misses < 40 or not floor_cats) else floor_cats
            if not cats:
                break
            name = str(rng.choice(cats))
            placed = self.place_small(CATALOG[name]) if name in small_cats else self.place_floor(
                CATALOG[name], int(rng.integers(len(self.rooms))), tries=10)
            misses += placed is None

    def scene(self, seed: int) -> Scene:
        rooms = [{"id": i, "min": [round(r.x0, 4), round(r.y0, 4)], "max": [round(r.x1, 4), round(r.y1, 4)]}
                 for i, r in enumerate(self.rooms)]
        return Scene(scene_id=f"sim_{seed:06d}", geometry=self.geometry, instances=[p.inst for p in self.placed],
                     seed=seed, split=split_of(seed), rooms=rooms, doorways=self.doorways)


def generate_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """A procedural scene for `seed` (which must lie in a split's range; see `split_of`)."""
    split_of(seed)  # raises ValueError for negative / out-of-range / non-integer seeds
    cfg = config or SceneConfig()
    rng = np.random.default_rng(seed)
    n_target = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    for attempt in range(4):  # a different layout when a cramped one cannot hold enough objects
        b = _Builder(seed * 7 + attempt if attempt else seed, cfg)
        b.layout()
        b.populate(n_target)
        if len(b.placed) >= cfg.min_objects:
            return b.scene(seed)
    raise ValueError(f"could not place {cfg.min_objects} objects for seed {seed} with categories "
                     f"{cfg.categories or 'all'} in rooms of {cfg.room_min_size}-{cfg.room_max_size} m; "
                     f"allow larger rooms, more rooms or fewer objects")
