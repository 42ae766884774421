"""RViz MarkerArrays of object boxes (the map's objects, a grounding result) and reading them back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from llm3d_core.messages import ConversionError
from llm3d_ros.conversions.transforms import pose_to_matrix

if TYPE_CHECKING:
    from llm3d_core.mapping.layers import LabelledBox
    from llm3d_core.reasoner import Grounded


class BoxObject(Protocol):
    """What objects_to_markers needs of an object (llm3d_core.mapping.objects.MapObject fits)."""

    id: int
    label: str
    box_min: Any
    box_max: Any


# Distinct colours by object id (a fixed 8-colour palette, so a box keeps its colour across updates).
_PALETTE = np.array([[0.90, 0.10, 0.10], [0.10, 0.60, 0.90], [0.20, 0.75, 0.20], [0.95, 0.60, 0.10],
                     [0.60, 0.30, 0.85], [0.10, 0.80, 0.80], [0.90, 0.30, 0.70], [0.60, 0.60, 0.10]])


# Corner index pairs of a box's 12 edges; corner i has bit 0 -> x max, bit 1 -> y max, bit 2 -> z max.
_BOX_EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]


def objects_to_markers(objects: Iterable[BoxObject], frame_id: str, stamp: Time | None = None,
                       style: str = "line_list", alpha: float = 0.35, namespace: str = "llm3d_objects",
                       line_width: float = 0.02, text_height: float = 0.12) -> MarkerArray:
    """Object boxes + TEXT_VIEW_FACING labels. A DELETEALL marker comes first, so boxes of objects
    that are gone disappear from RViz instead of lingering."""
    if style not in ("line_list", "cube"):
        raise ConversionError(f"marker style must be 'line_list' or 'cube', got {style!r}")
    header = Header(frame_id=frame_id, stamp=stamp or Time())
    markers = [Marker(header=header, ns=namespace, action=Marker.DELETEALL)]
    for obj in objects:
        lo, hi = np.asarray(obj.box_min, np.float64), np.asarray(obj.box_max, np.float64)
        if lo.shape != (3,) or hi.shape != (3,) or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ConversionError(f"object {obj.id}: box must be finite (3,) min/max, got {lo.tolist()}, {hi.tolist()}")
        r, g, b = (float(c) for c in _PALETTE[int(obj.id) % len(_PALETTE)])
        centre, size = (lo + hi) / 2.0, np.maximum(hi - lo, 1e-3)
        box = Marker(header=header, ns=namespace, id=2 * int(obj.id), action=Marker.ADD)
        box.pose.orientation.w = 1.0
        if style == "cube":
            box.type = Marker.CUBE
            box.pose.position = Point(x=float(centre[0]), y=float(centre[1]), z=float(centre[2]))
            box.scale.x, box.scale.y, box.scale.z = (float(s) for s in size)
            box.color = ColorRGBA(r=r, g=g, b=b, a=float(alpha))
        else:
            box.type = Marker.LINE_LIST
            box.scale.x = float(line_width)
            corners = [np.where([(i >> k) & 1 for k in range(3)], hi, lo) for i in range(8)]
            box.points = [Point(x=float(c[0]), y=float(c[1]), z=float(c[2])) for a, b_ in _BOX_EDGES
                          for c in (corners[a], corners[b_])]
            box.color = ColorRGBA(r=r, g=g, b=b, a=1.0)
        text = Marker(header=header, ns=namespace, id=2 * int(obj.id) + 1, type=Marker.TEXT_VIEW_FACING,
                      action=Marker.ADD, text=f"{obj.label or 'object'} #{obj.id}")
        text.pose.position = Point(x=float(centre[0]), y=float(centre[1]), z=float(hi[2] + text_height))
        text.pose.orientation.w = 1.0
        text.scale.z = float(text_height)
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        markers += [box, text]
    return MarkerArray(markers=markers)


def live_markers(arrays: Iterable[MarkerArray]) -> list[Marker]:
    """The markers RViz shows after receiving `arrays` in order: ADD/MODIFY replaces the marker with
    the same (ns, id), DELETE removes it, DELETEALL removes every marker received before it."""
    live: dict[tuple[str, int], Marker] = {}
    for array in arrays:
        for marker in array.markers:
            key = (marker.ns, int(marker.id))
            if marker.action == Marker.DELETEALL:
                live.clear()
            elif marker.action == Marker.DELETE:
                live.pop(key, None)
            else:
                live[key] = marker
    return list(live.values())


_BOX_TYPES = (Marker.CUBE, Marker.LINE_LIST, Marker.LINE_STRIP, Marker.CUBE_LIST, Marker.POINTS, Marker.SPHERE)


def marker_boxes(markers: Iterable[Marker]) -> list[tuple[str, "LabelledBox"]]:
    """(frame_id, box) of each shape marker (the axis-aligned box around its extent) with the text of
    the TEXT_VIEW_FACING marker above it (same ns and frame, its x, y inside the box's footprint) as
    label; a text with no box under it becomes a label-only box (min == max). As objects_to_markers
    and the reasoner's grounding markers draw them."""
    from llm3d_core.mapping.layers import LabelledBox

    shapes: list[tuple[Marker, LabelledBox]] = []
    texts: list[Marker] = []
    for marker in markers:
        if marker.type == Marker.TEXT_VIEW_FACING:
            texts.append(marker)
        elif marker.type in _BOX_TYPES:
            T = pose_to_matrix(marker.pose)
            if marker.type in (Marker.CUBE, Marker.SPHERE):
                half = np.abs([marker.scale.x, marker.scale.y, marker.scale.z]) / 2.0
                local = np.array([-half, half])  # (2, 3)
            elif len(marker.points):
                local = np.array([[p.x, p.y, p.z] for p in marker.points])  # (P, 3)
            else:
                continue
            color = (float(marker.color.r), float(marker.color.g), float(marker.color.b))
            box = LabelledBox(local.min(axis=0), local.max(axis=0), "", color).transformed(T)
            shapes.append((marker, box))
    out = [(m.header.frame_id, box) for m, box in shapes]
    for text in texts:
        at = pose_to_matrix(text.pose)[:3, 3]
        under = [box for m, box in shapes if m.ns == text.ns and m.header.frame_id == text.header.frame_id
                 and not box.label and np.all(box.box_min[:2] - 1e-6 <= at[:2])
                 and np.all(at[:2] <= box.box_max[:2] + 1e-6)]
        if under:  # overlapping boxes: the one centred under the text
            nearest = min(under, key=lambda b: float(np.linalg.norm((b.box_min[:2] + b.box_max[:2]) / 2 - at[:2])))
            nearest.label = text.text
        else:
            color = (float(text.color.r), float(text.color.g), float(text.color.b))
            out.append((text.header.frame_id, LabelledBox(at.copy(), at.copy(), text.text, color)))
    return out


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
