"""Relations in requests checked on the map's boxes: "the cabinet on the desk" against that cabinet.

The object pointer ranks the map's objects against each other; asked for "the cabinet on the
desk" in a room whose only cabinet stands on the floor, it picks that cabinet, and the absence
head, trained on few such records, rejected one in seven of them (docs/model.md, "Saying not here").
The map's boxes settle the relation directly, in the terms the data generator states it
(sim/datagen/relations.py, after ReferIt3D's Sr3D):

- "on" / "in" (a support): the target rests on the anchor's top or on one of its inner boards:
  its footprint centre lies over the anchor's footprint (grown by `SUPPORT_MARGIN_M`, for
  segmentation noise), and its bottom is above the anchor's base by at least `SUPPORT_LIFT_M`
  (a thing on the floor beside a table is not on it) and at most `SUPPORT_TOP_M` above its top.
  People say "the book on the shelf" for a book on an inner board, so "on" and "in" share this test.
- "next to" / "near" / "beside" / "close to": the horizontal gap between the boxes is at most
  `near_m`. The generator calls a pair near within 0.5 m and writes an absent "near" only when
  every instance is at least 1.5 m from every anchor; the check's default of 1.0 m sits between
  so that box noise neither refuses a present pair nor accepts an absent one.

Only one relation to a named anchor is read ("the mug on the table"); nested or superlative
phrases ("the mug on the table next to the lamp", "the box closest to the chair"), places that are
not objects ("in the kitchen", "on the left") and anything else give no opinion (None), and the
request goes on as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

SUPPORT_MARGIN_M = 0.2
SUPPORT_LIFT_M = 0.03
SUPPORT_TOP_M = 0.3

_SUPPORT = {"on top of": "on", "on": "on", "atop": "on", "inside": "in", "in": "in", "within": "in"}
_NEAR = ("next to", "near to", "near", "beside", "close to")
_WORDS = sorted([*_SUPPORT, *_NEAR], key=len, reverse=True)
_NOUN = r"[^\W\d_][\w' -]*?"  # words: letters first, no punctuation that ends a request
_RELATION = re.compile(
    r"\b(?:the|a|an)\s+(?P<target>" + _NOUN + r")\s+"
    r"(?:(?:that|which)\s+(?:is|are|sits|stands|lies)\s+)?(?:(?:sitting|standing|stored|placed|lying|kept|located)\s+)?"
    r"(?P<word>" + "|".join(re.escape(w) for w in _WORDS) + r")\s+(?:the|a|an)\s+(?P<anchor>" + _NOUN + r")"
    r"(?:\s*,?\s+(?:and|then|please)\b.*)?\s*[.?!]*\s*$", re.IGNORECASE)
# Words that make a phrase more than one plain noun phrase: another relation, a determiner.
_NESTED = re.compile(r"\b(?:the|a|an|of|to|from|on|in|inside|near|next|beside|close|closest|nearest|farthest|"
                     r"between|left|right|behind|under|above|below|with|by|that|which)\b", re.IGNORECASE)
# Anchors that are places or directions, not map objects.
_NOT_OBJECTS = {"floor", "ground", "wall", "walls", "ceiling", "corner", "left", "right", "middle", "center",
                "centre", "front", "back", "room", "scene", "map", "house", "kitchen", "bedroom", "bathroom",
                "living room", "office", "hallway", "hall", "area", "way", "distance", "dark", "open"}


@dataclass(frozen=True)
class Relation:
    """One relation a referring expression states: "the cabinet on the desk" ->
    Relation(target "cabinet", kind "on", word "on", anchor "desk")."""

    target: str
    kind: str  # on | in | near
    word: str  # as written: "next to", "on top of"
    anchor: str

    @property
    def anchor_query(self) -> str:
        """The anchor as a referring expression of its own ("the desk")."""
        return f"the {self.anchor}"


def parse_relation(expression: str) -> Relation | None:
    """The one support or proximity relation `expression` states about its target, or None
    (no such relation, a nested or superlative one, or an anchor that is a place: see the module)."""
    m = _RELATION.search(" ".join(expression.split()))
    if m is None:
        return None
    target, anchor = m.group("target").strip(" -'"), m.group("anchor").strip(" -'")
    if not target or not anchor or _NESTED.search(target) or _NESTED.search(anchor) \
            or anchor.lower() in _NOT_OBJECTS:
        return None
    word = m.group("word").lower()
    return Relation(target.lower(), _SUPPORT.get(word, "near"), word, anchor.lower())


def xy_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Horizontal distance between two boxes [min xyz, max xyz] (6,) (0 when their footprints meet)."""
    d = np.maximum(np.maximum(a[:2] - b[3:5], b[:2] - a[3:5]), 0.0)
    return float(np.linalg.norm(d))


def rests_on(target: np.ndarray, anchor: np.ndarray) -> bool:
    """Whether box `target` rests on `anchor`'s top or an inner board (module docstring)."""
    cx, cy = (target[0] + target[3]) / 2, (target[1] + target[4]) / 2
    over = (anchor[0] - SUPPORT_MARGIN_M <= cx <= anchor[3] + SUPPORT_MARGIN_M
            and anchor[1] - SUPPORT_MARGIN_M <= cy <= anchor[4] + SUPPORT_MARGIN_M)
    return bool(over and anchor[2] + SUPPORT_LIFT_M <= target[2] <= anchor[5] + SUPPORT_TOP_M)


def holds(relation: Relation, target: np.ndarray, anchor: np.ndarray, near_m: float) -> bool:
    """Whether the boxes (6,) of a target and an anchor satisfy `relation`."""
    if relation.kind == "near":
        return xy_gap(target, anchor) <= near_m
    return rests_on(target, anchor)
