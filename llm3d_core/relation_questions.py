"""Relation questions answered from the map: "what is the mug on?", "what is on the nightstand?",
"what is between the bed and the sofa?", "is the lamp near the chair?".

The 3D-LLM answers these from its object tokens, worst of all question types after colours (test
EM on the templates: support 12.5 %, between 15 %: it must both find the objects and name a third one). The map has
the boxes, and the object pointer names map objects far better than the mapper's labels
(llm3d_core.naming: 79 % against 8 % on the val maps), so the reasoner grounds the objects a question
names, reads the relation on their boxes in the data generator's terms (sim/datagen/relations.py,
after ReferIt3D's Sr3D), and answers with the pointer's name for the object found:

- support ("What is the mug on?"): the object the target rests on (llm3d_core.spatial.rests_on);
- on top ("What is on the nightstand?"): the object resting on the anchor (the one of most points
  when segmentation split it);
- between ("What is between the bed and the sofa?"): the object whose centre projects onto the
  segment between the two centres at 0.2-0.8 of its length and within BETWEEN_M of it (and that
  rests on neither);
- near ("Is the lamp near the chair?"): yes when the horizontal gap of the two boxes is at most
  `near_m` (the reasoner's relation_near_m, 1.0 m: the generator says near within 0.5 m and asks
  "not near" from 1.5 m).

The forms are read by their structure, not template by template: a question word, the relation
word, and referring expressions that start with a determiner. Anything else gives None and the
model answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from llm3d_core.spatial import rests_on, xy_gap

BETWEEN_M = 0.5
BETWEEN_SPAN = (0.2, 0.8)
MIN_BETWEEN_LENGTH_M = 1.0

_REF = r"(?P<{}>(?:the|a|an|this|that) [^?!.,;:]+?)"
_WH = r"(?:(?:tell me|say|name|guess) )?(?:what|which)(?: one| object| thing| item| piece of furniture)?"
_REST = r"(?:(?:is |are )?(?:sitting|standing|resting|lying|placed|put|kept|located|set|found) )?"
_SUPPORT_FORMS = (
    # "what is the mug on?", "what does the mug rest on?", "tell me what the mug is sitting on"
    rf"^{_WH} (?:is |are |does |do )?{_REF.format('a')} {_REST}(?:(?:is|are) )?(?:rests?|stands?|sits?|lies?)? ?"
    r"(?:on top of|on|upon)$",
    # "on what is the mug?", "on which object is the mug standing?"
    rf"^(?:on|upon) {_WH} (?:is|are|does|do) {_REF.format('a')}(?: (?:sitting|standing|resting|lying|placed|kept|rest|stand|sit|lie))?$",
    # "the mug is sitting on what?"
    rf"^{_REF.format('a')} (?:is|are) {_REST}(?:on|upon) (?:what|which(?: one| object| thing)?)$",
    # "where is the mug placed?" (a support: where something is set down, not where in the room)
    rf"^where (?:is|are) {_REF.format('a')} (?:placed|put|kept|set|standing|sitting|resting|lying)$",
)
_ON_TOP_FORMS = (
    # "what is on the nightstand?", "which object is on top of the desk?", "what can be found on the shelf?"
    rf"^{_WH}(?: is| are| can be| could be| do you see| has been| have been| was| were)? ?"
    rf"(?:(?:sitting|standing|resting|lying|placed|put|kept|located|set|found|seen) )?(?:on top of|on|upon) {_REF.format('a')}$",
    # "name the object on the nightstand", "tell me what is on the nightstand" (the _WH prefix above)
    rf"^(?:name|tell me|say) the (?:object|thing|item) (?:that is )?(?:on top of|on|upon) {_REF.format('a')}$",
)
_BETWEEN_FORMS = (
    # "what is between the bed and the sofa?", "what lies between …", "which object stands between …"
    rf"^{_WH}(?: is| are| lies| stands| sits| can be found| do you see)? ?(?:(?:placed|located|found|standing) )?"
    rf"between {_REF.format('a')} and {_REF.format('b')}$",
    # "between the bed and the sofa, what object is there?"
    rf"^between {_REF.format('a')} and {_REF.format('b')},? {_WH}(?: is| are| lies| stands)?(?: there)?$",
)
_NEAR_WORDS = r"(?:near to|near|next to|close to|beside|by)"
_NEAR_FORMS = (
    # "is the lamp near the chair?", "would you say the lamp is close to the chair?"
    rf"^(?:(?:would you say|do you think|do you know if|is it true that) )?(?:is )?{_REF.format('a')} (?:is )?"
    rf"{_NEAR_WORDS} {_REF.format('b')}$",
    # "are the lamp and the chair near each other?", "… close together?"
    rf"^are {_REF.format('a')} and {_REF.format('b')} (?:{_NEAR_WORDS} (?:each other|one another)|close together)$",
)
_COMPILED = tuple((kind, re.compile(rx)) for kind, forms in (
    ("support", _SUPPORT_FORMS), ("on_top", _ON_TOP_FORMS), ("between", _BETWEEN_FORMS), ("near", _NEAR_FORMS))
    for rx in forms)
_OPENER = re.compile(r"^(?:(?:hey|hi|ok|okay|so|please|robot)[, ]+)*(?:(?:can|could) you (?:please )?)?")


@dataclass(frozen=True)
class RelationQuestion:
    """What a relation question asks: `kind` (support | on_top | between | near) about the objects
    `a` (and `b`) refer to."""

    kind: str
    a: str
    b: str = ""


def parse_relation_question(question: str) -> RelationQuestion | None:
    """The relation `question` asks about, or None when it is not one of the forms above."""
    q = " ".join(question.lower().split()).strip(" ?.!")
    q = re.sub(r"\b(what|which one|which object)'s\b", r"\1 is", _OPENER.sub("", q))
    for kind, rx in _COMPILED:
        m = rx.match(q)
        if m:
            refs = m.groupdict()
            a, b = refs["a"].strip(), (refs.get("b") or "").strip()
            if a == b:
                return None
            return RelationQuestion(kind, a, b)
    return None


def supporter(target: np.ndarray, boxes: Sequence[np.ndarray], skip: int) -> int | None:
    """Index of the box `target` (6,) rests on (the one whose top is nearest its bottom), skipping `skip`."""
    under = [i for i, box in enumerate(boxes) if i != skip and rests_on(target, box)]
    return min(under, key=lambda i: abs(float(target[2] - boxes[i][5])), default=None)


def resting_on(anchor: np.ndarray, boxes: Sequence[np.ndarray], skip: int, points: Sequence[int]) -> int | None:
    """Index of the box that rests on `anchor` (6,) with the most points, skipping `skip`."""
    above = [i for i, box in enumerate(boxes) if i != skip and rests_on(box, anchor)]
    return max(above, key=lambda i: points[i], default=None)


def between(a: np.ndarray, b: np.ndarray, boxes: Sequence[np.ndarray], skip: Sequence[int]) -> int | None:
    """Index of the box whose centre lies between boxes a and b (module docstring), nearest the
    segment between them; None when a and b stand closer than MIN_BETWEEN_LENGTH_M or none does."""
    pa, pb = (a[:2] + a[3:5]) / 2, (b[:2] + b[3:5]) / 2  # (2,) footprint centres
    ab = pb - pa
    length = float(np.linalg.norm(ab))
    if length < MIN_BETWEEN_LENGTH_M:
        return None
    best, best_perp = None, BETWEEN_M
    for i, box in enumerate(boxes):
        if i in skip or rests_on(box, a) or rests_on(box, b):
            continue
        pt = (box[:2] + box[3:5]) / 2 - pa
        s = float(pt @ ab) / length**2
        perp = abs(float(ab[0] * pt[1] - ab[1] * pt[0])) / length
        if BETWEEN_SPAN[0] <= s <= BETWEEN_SPAN[1] and perp <= best_perp:
            best, best_perp = i, perp
    return best


def near(a: np.ndarray, b: np.ndarray, near_m: float) -> str:
    """"yes" when boxes a and b (6,) stand within `near_m` of each other horizontally, else "no"."""
    return "yes" if xy_gap(a, b) <= near_m else "no"
