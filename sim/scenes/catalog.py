"""The object catalog: categories built from trimesh primitives, and a palette of named colours.

Every builder makes an object in its local frame: origin at the bottom centre, x = width,
y = depth, z up, the front facing -y (the back, +y, goes against a wall). Shapes are chosen so
that categories differ in silhouette (a chair has seat + back + legs, a table top + legs, a shelf
open boards, ...), which is what a 3D-language model needs to tell them apart from geometry.
Surfaces say where small objects may rest: on the top ("on") or on interior boards ("in").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import trimesh

from llm3d_core.affordances import AFFORDANCES
from llm3d_core.colors import COLOR_TERMS

RGB = tuple[int, int, int]

# Fixed palette: colour names used in annotations and language data, with their rendered RGB.
# The colour terms requests use are the paint (llm3d_core.colors checks them against the map).
PALETTE: dict[str, RGB] = dict(COLOR_TERMS)
# Colours of parts that keep their look whatever the instance colour is.
LEG, SCREEN, METAL, LINEN, LEAF, WOOD = (55, 55, 55), (15, 15, 20), (175, 175, 180), (245, 245, 240), (50, 130, 50), (150, 110, 70)
FLOOR_RGB, WALL_RGB = (185, 160, 125), (225, 222, 212)

Part = tuple[trimesh.Trimesh, RGB]


@dataclass(frozen=True)
class Surface:
    """A horizontal rectangle in the object's local frame where small objects can rest."""

    z: float
    xy_min: tuple[float, float]
    xy_max: tuple[float, float]
    max_height: float  # tallest object that fits (clearance to the next board)
    relation: str  # "on" (top) or "in" (interior board)


@dataclass
class Built:
    parts: list[Part]
    surfaces: list[Surface] = field(default_factory=list)


@dataclass(frozen=True)
class Category:
    name: str
    size_min: tuple[float, float, float]  # width, depth, height in metres
    size_max: tuple[float, float, float]
    placement: str  # "wall" (back against a wall), "free" (on the floor anywhere), "surface" (on furniture), "any"
    colors: tuple[str, ...]  # plausible palette names
    build: Callable[[float, float, float, RGB], Built]
    affordances: tuple[str, ...] = ()  # verbs for affordance questions ("sit", "store", ...)


def box(cx: float, cy: float, z0: float, w: float, d: float, h: float) -> trimesh.Trimesh:
    """Axis-aligned box with its bottom face centred at (cx, cy, z0)."""
    return trimesh.creation.box(extents=(w, d, h), transform=trimesh.transformations.translation_matrix((cx, cy, z0 + h / 2)))


def cylinder(cx: float, cy: float, z0: float, r: float, h: float, sections: int = 16) -> trimesh.Trimesh:
    return trimesh.creation.cylinder(radius=r, height=h, sections=sections,
                                     transform=trimesh.transformations.translation_matrix((cx, cy, z0 + h / 2)))


def sphere(cx: float, cy: float, cz: float, r: float) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=1, radius=r)
    mesh.apply_translation((cx, cy, cz))
    return mesh


def _legs(w: float, d: float, h: float, t: float, inset: float = 0.0) -> list[Part]:
    xs, ys = w / 2 - t / 2 - inset, d / 2 - t / 2 - inset
    return [(box(sx * xs, sy * ys, 0.0, t, t, h), LEG) for sx in (-1, 1) for sy in (-1, 1)]


def build_chair(w: float, d: float, h: float, c: RGB) -> Built:
    seat_z = min(0.46, 0.5 * h)
    parts = _legs(w, d, seat_z - 0.05, 0.04) + [(box(0, 0, seat_z - 0.05, w, d, 0.05), c)]
    parts.append((box(0, d / 2 - 0.03, seat_z, w, 0.06, h - seat_z), c))  # backrest
    return Built(parts)


def build_table(w: float, d: float, h: float, c: RGB) -> Built:
    parts = _legs(w, d, h - 0.04, 0.06, inset=0.03) + [(box(0, 0, h - 0.04, w, d, 0.04), c)]
    return Built(parts, [Surface(h, (-w / 2, -d / 2), (w / 2, d / 2), 0.7, "on")])


def build_sofa(w: float, d: float, h: float, c: RGB) -> Built:
    arm = 0.18
    parts = [(box(0, 0, 0, w - 2 * arm, d, 0.42), c), (box(0, d / 2 - 0.1, 0.42, w - 2 * arm, 0.2, h - 0.42), c)]
    parts += [(box(s * (w / 2 - arm / 2), 0, 0, arm, d, 0.62), c) for s in (-1, 1)]
    return Built(parts)


def build_bed(w: float, d: float, h: float, c: RGB) -> Built:
    parts = [(box(0, 0, 0, w, d, 0.3), c), (box(0, -0.03, 0.3, w - 0.06, d - 0.12, 0.2), LINEN),
             (box(0, d / 2 - 0.04, 0, w, 0.08, h), c), (box(0, d / 2 - 0.3, 0.5, w * 0.6, 0.35, 0.1), LINEN)]
    return Built(parts)


def build_cabinet(w: float, d: float, h: float, c: RGB) -> Built:
    parts = [(box(0, 0, 0, w, d, h), c)]
    parts += [(box(s * 0.08, -d / 2 - 0.01, h * 0.55, 0.03, 0.02, 0.15), METAL) for s in (-1, 1)]  # door handles
    return Built(parts, [Surface(h, (-w / 2, -d / 2), (w / 2, d / 2), 0.6, "on")])


def build_nightstand(w: float, d: float, h: float, c: RGB) -> Built:
    parts = [(box(0, 0, 0.05, w, d, h - 0.05), c), (box(0, -d / 2 - 0.01, h * 0.7, 0.12, 0.02, 0.03), METAL)]
    parts += [(box(sx * (w / 2 - 0.03), sy * (d / 2 - 0.03), 0, 0.04, 0.04, 0.05), LEG) for sx in (-1, 1) for sy in (-1, 1)]
    return Built(parts, [Surface(h, (-w / 2, -d / 2), (w / 2, d / 2), 0.5, "on")])


def build_counter(w: float, d: float, h: float, c: RGB) -> Built:
    parts = [(box(0, 0.02, 0, w, d - 0.04, h - 0.04), c), (box(0, 0, h - 0.04, w, d, 0.04), (90, 90, 95))]
    return Built(parts, [Surface(h, (-w / 2, -d / 2), (w / 2, d / 2), 0.6, "on")])


def build_shelf(w: float, d: float, h: float, c: RGB) -> Built:
    t, boards = 0.03, 4
    parts = [(box(s * (w / 2 - t / 2), 0, 0, t, d, h), c) for s in (-1, 1)]
    parts.append((box(0, d / 2 - 0.01, 0, w, 0.02, h), c))  # back panel
    levels = np.linspace(0.05, h - t, boards)
    surfaces = []
    for i, z in enumerate(levels):
        parts.append((box(0, 0, float(z), w - 2 * t, d - 0.02, t), c))
        top = float(z) + t
        if i + 1 < len(levels):
            surfaces.append(Surface(top, (-w / 2 + t, -d / 2), (w / 2 - t, d / 2 - 0.02), float(levels[i + 1] - top - 0.02), "in"))
    surfaces.append(Surface(h, (-w / 2, -d / 2), (w / 2, d / 2), 0.4, "on"))
    return Built(parts, surfaces)


def build_lamp(w: float, d: float, h: float, c: RGB) -> Built:
    r = min(w, d) / 2
    return Built([(cylinder(0, 0, 0, r * 0.8, 0.03), LEG), (cylinder(0, 0, 0.03, 0.015, h - 0.33, 8), METAL),
                  (cylinder(0, 0, h - 0.3, r, 0.3), c)])


def build_tv(w: float, d: float, h: float, c: RGB) -> Built:
    screen_h = h - 0.08
    return Built([(box(0, 0, 0, w * 0.4, d, 0.02), c), (box(0, d / 2 - 0.04, 0.02, 0.06, 0.03, 0.08), c),
                  (box(0, d / 2 - 0.02, 0.08, w, 0.04, screen_h), c), (box(0, d / 2 - 0.045, 0.1, w - 0.04, 0.01, screen_h - 0.04), SCREEN)])


def build_monitor(w: float, d: float, h: float, c: RGB) -> Built:
    return Built([(box(0, 0, 0, 0.2, d, 0.015), c), (box(0, d / 2 - 0.03, 0.015, 0.04, 0.02, h * 0.35), c),
                  (box(0, d / 2 - 0.015, h * 0.3, w, 0.03, h * 0.7), c),
                  (box(0, d / 2 - 0.035, h * 0.32, w - 0.03, 0.01, h * 0.7 - 0.04), SCREEN)])


def build_laptop(w: float, d: float, h: float, c: RGB) -> Built:
    return Built([(box(0, 0, 0, w, d, 0.02), c), (box(0, d / 2 - 0.006, 0.02, w, 0.012, h - 0.02), c),
                  (box(0, d / 2 - 0.016, 0.03, w - 0.02, 0.004, h - 0.04), SCREEN)])


def build_mug(w: float, d: float, h: float, c: RGB) -> Built:
    r = min(w * 0.7, d) / 2
    return Built([(cylinder(-w / 2 + r, 0, 0, r, h, 12), c), (box(-w / 2 + 2 * r + (w - 2 * r) / 2, 0, h * 0.25, w - 2 * r, 0.015, h * 0.5), c)])


def build_bottle(w: float, d: float, h: float, c: RGB) -> Built:
    r = min(w, d) / 2
    return Built([(cylinder(0, 0, 0, r, h * 0.65, 12), c), (cylinder(0, 0, h * 0.65, r * 0.4, h * 0.3, 8), c),
                  (cylinder(0, 0, h * 0.95, r * 0.45, h * 0.05, 8), METAL)])


def build_book(w: float, d: float, h: float, c: RGB) -> Built:
    return Built([(box(0, 0, 0, w, d, h), c), (box(0.005, 0, 0.005, w - 0.01, d + 0.002, h - 0.01), LINEN)])


def build_plant(w: float, d: float, h: float, c: RGB) -> Built:
    r = min(w, d) / 2
    pot_h = h * 0.3
    return Built([(cylinder(0, 0, 0, r * 0.6, pot_h, 12), c), (cylinder(0, 0, pot_h, 0.02, h * 0.2, 6), LEAF),
                  (sphere(0, 0, h - r, r), LEAF)])


def build_sink(w: float, d: float, h: float, c: RGB) -> Built:
    body_h = h - 0.3
    return Built([(box(0, 0, 0, w, d, body_h), c), (box(0, -0.02, body_h, w * 0.7, d * 0.7, 0.12), LINEN),
                  (cylinder(0, d / 2 - 0.06, body_h, 0.02, 0.3, 8), METAL)])


def build_toilet(w: float, d: float, h: float, c: RGB) -> Built:
    bowl_r = min(w / 2, d * 0.35)
    return Built([(cylinder(0, -d / 2 + bowl_r, 0, bowl_r, 0.42, 16), c), (box(0, d / 2 - 0.1, 0, w * 0.5, 0.2, 0.42), c),
                  (box(0, d / 2 - 0.09, 0.42, w, 0.18, h - 0.42), c)])


def build_fridge(w: float, d: float, h: float, c: RGB) -> Built:
    return Built([(box(0, 0, 0, w, d, h), c), (box(0, -d / 2 - 0.005, h * 0.62, w, 0.01, 0.015), LEG),
                  (box(-w / 2 + 0.06, -d / 2 - 0.02, h * 0.35, 0.03, 0.03, 0.22), METAL),
                  (box(-w / 2 + 0.06, -d / 2 - 0.02, h * 0.7, 0.03, 0.03, 0.2), METAL)])


def build_microwave(w: float, d: float, h: float, c: RGB) -> Built:
    return Built([(box(0, 0, 0, w, d, h), c), (box(-w * 0.12, -d / 2 - 0.005, h * 0.15, w * 0.6, 0.01, h * 0.7), SCREEN),
                  (box(w * 0.36, -d / 2 - 0.005, h * 0.2, w * 0.15, 0.01, h * 0.6), METAL)])


def build_box(w: float, d: float, h: float, c: RGB) -> Built:
    return Built([(box(0, 0, 0, w, d, h), c), (box(0, 0, h, w * 0.1, d + 0.002, 0.002), (200, 180, 120))])


def build_trash_can(w: float, d: float, h: float, c: RGB) -> Built:
    r = min(w, d) / 2
    return Built([(cylinder(0, 0, 0, r * 0.9, h - 0.04, 16), c), (cylinder(0, 0, h - 0.04, r, 0.04, 16), c)])


_FURNITURE = ("brown", "black", "white", "gray", "beige")
_SMALL = tuple(PALETTE)
CATALOG: dict[str, Category] = {c.name: c for c in (
    Category("chair", (0.42, 0.42, 0.8), (0.55, 0.55, 1.0), "free", _FURNITURE + ("red", "blue", "green"), build_chair, AFFORDANCES["chair"]),
    Category("table", (0.8, 0.6, 0.7), (1.6, 1.0, 0.78), "free", _FURNITURE, build_table, AFFORDANCES["table"]),
    Category("sofa", (1.5, 0.8, 0.75), (2.2, 0.95, 0.9), "wall", _FURNITURE + ("red", "blue", "green", "teal", "navy"), build_sofa, AFFORDANCES["sofa"]),
    Category("bed", (1.0, 1.9, 0.8), (1.7, 2.1, 1.1), "wall", _FURNITURE + ("blue", "navy"), build_bed, AFFORDANCES["bed"]),
    Category("cabinet", (0.6, 0.4, 0.7), (1.2, 0.55, 1.1), "wall", _FURNITURE, build_cabinet, AFFORDANCES["cabinet"]),
    Category("nightstand", (0.4, 0.35, 0.45), (0.55, 0.45, 0.6), "wall", _FURNITURE, build_nightstand, AFFORDANCES["nightstand"]),
    Category("counter", (1.0, 0.55, 0.88), (2.0, 0.65, 0.92), "wall", ("white", "gray", "beige", "brown"), build_counter, AFFORDANCES["counter"]),
    Category("shelf", (0.6, 0.3, 1.2), (1.1, 0.4, 1.9), "wall", _FURNITURE, build_shelf, AFFORDANCES["shelf"]),
    Category("lamp", (0.3, 0.3, 1.3), (0.45, 0.45, 1.7), "free", ("white", "beige", "yellow", "black", "orange"), build_lamp, AFFORDANCES["lamp"]),
    Category("tv", (0.8, 0.2, 0.5), (1.3, 0.25, 0.8), "surface", ("black", "gray", "white"), build_tv, AFFORDANCES["tv"]),
    Category("monitor", (0.45, 0.18, 0.35), (0.65, 0.22, 0.5), "surface", ("black", "gray", "white"), build_monitor, AFFORDANCES["monitor"]),
    Category("laptop", (0.3, 0.22, 0.2), (0.38, 0.26, 0.25), "surface", ("gray", "black", "white"), build_laptop, AFFORDANCES["laptop"]),
    Category("mug", (0.1, 0.08, 0.09), (0.13, 0.1, 0.12), "surface", _SMALL, build_mug, AFFORDANCES["mug"]),
    Category("bottle", (0.07, 0.07, 0.2), (0.1, 0.1, 0.32), "surface", ("green", "blue", "white", "brown", "teal", "red"), build_bottle, AFFORDANCES["bottle"]),
    Category("book", (0.15, 0.2, 0.03), (0.22, 0.28, 0.06), "surface", _SMALL, build_book, AFFORDANCES["book"]),
    Category("plant", (0.3, 0.3, 0.6), (0.5, 0.5, 1.2), "free", ("brown", "white", "orange", "gray", "black"), build_plant, AFFORDANCES["plant"]),
    Category("sink", (0.5, 0.45, 0.9), (0.8, 0.55, 1.0), "wall", ("white", "gray", "beige"), build_sink, AFFORDANCES["sink"]),
    Category("toilet", (0.38, 0.6, 0.75), (0.45, 0.7, 0.85), "wall", ("white", "beige"), build_toilet, AFFORDANCES["toilet"]),
    Category("fridge", (0.6, 0.6, 1.6), (0.85, 0.7, 1.9), "wall", ("white", "gray", "black"), build_fridge, AFFORDANCES["fridge"]),
    Category("microwave", (0.45, 0.32, 0.26), (0.55, 0.4, 0.32), "surface", ("white", "black", "gray"), build_microwave, AFFORDANCES["microwave"]),
    Category("box", (0.2, 0.2, 0.15), (0.5, 0.45, 0.4), "any", ("brown", "beige", "white"), build_box, AFFORDANCES["box"]),
    Category("trash_can", (0.25, 0.25, 0.35), (0.4, 0.4, 0.7), "free", ("gray", "black", "blue", "green", "white"), build_trash_can, AFFORDANCES["trash_can"]),
)}
SUPPORTS = tuple(name for name in CATALOG if CATALOG[name].build(*CATALOG[name].size_min, (0, 0, 0)).surfaces)


def category(name: str) -> Category:
    """The catalog entry; an unknown name raises ValueError listing the known ones."""
    if name not in CATALOG:
        raise ValueError(f"unknown category {name!r}; known: {', '.join(sorted(CATALOG))}")
    return CATALOG[name]


def color_rgb(name: str) -> RGB:
    if name not in PALETTE:
        raise ValueError(f"unknown colour {name!r}; known: {', '.join(PALETTE)}")
    return PALETTE[name]
