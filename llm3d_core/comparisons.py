"""Comparisons read from the map: "which is bigger, the mug or the box?" answered from their boxes.

The 3D-LLM compares two objects from their object tokens, and loses 12 points of it on a phrasing it
never saw (test EM 71.7 % on the templates, 59.2 % in the held-out phrasing). The map has measured
both boxes. Three comparisons, each a measurement of the map's axis-aligned boxes:

- bigger (larger, "takes up more space"): the larger box volume;
- taller (higher): the larger box height;
- closer to X (nearer to X): the smaller 3D gap between the box and X's box (0 when they touch).

The data generator asks only comparisons that are clear on the true boxes (volumes 1.5 times
apart, heights 0.15 m and 1.2 times, gaps 1 m; sim/datagen/generator.py); the answer is the
winner's category word.

A comparison question names a comparative word and two referring expressions joined by "or" or
"and" ("Is the microwave that is black or the red book closer to the orange plant?", "Of the red
book and the tv, which one is taller?"); CLOSER's anchor runs from "to" to the end of its clause.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import numpy as np

_KINDS = (("closer", r"(?:closer|nearer)(?: to| by)?"), ("taller", r"(?:taller|higher)"),
          ("bigger", r"(?:bigger|larger|greater|takes? up more (?:space|room)|more space)"))
_COMPARATIVES = ("closer", "nearer", "taller", "higher", "bigger", "larger", "greater")
_DETERMINER = re.compile(r"\b(?:the|a|an|this|that)\b")
_CLAUSE_END = re.compile(r"[,:;?!]| which\b")
# What stands between a candidate and the comparative word ("the tv is taller", "the tv, which one is").
_TRAILER = re.compile(r"\s+(?:(?:which|what)(?: one| object| thing)? )?(?:is|are|one is|seems)?\s*(?:the )?$")


@dataclass(frozen=True)
class Comparison:
    """What a comparison question asks: `kind` (bigger | taller | closer) of `a` and `b` (referring
    expressions), closer ones `to` an anchor."""

    kind: str
    a: str
    b: str
    to: str = ""


def _ref(text: str) -> str | None:
    """The referring expression in `text`: from its first determiner on, without trailing fillers."""
    det = _DETERMINER.search(text)
    if det is None:
        return None
    ref = text[det.start():].strip(" ,:;?!.")
    ref = _TRAILER.sub("", ref).strip(" ,:;?!.")
    return ref if len(ref.split()) >= 2 else None


def _spelled(word: str) -> str:
    """A comparative with two letters swapped or one mistyped spelled right ("talelr" -> "taller");
    only words of its length, so "large" stays "large"."""
    if len(word) != 6 or word in _COMPARATIVES:
        return word
    close = difflib.get_close_matches(word, _COMPARATIVES, n=1, cutoff=0.8)
    return close[0] if close else word


def parse_comparison(question: str) -> Comparison | None:
    """The comparison `question` asks, or None when it names no comparative word or not two objects."""
    q = re.sub(r"[a-z]+", lambda m: _spelled(m.group()), " ".join(question.lower().split()))
    for kind, word in _KINDS:
        m = re.search(rf"\b{word}\b", q)
        if m is None:
            continue
        anchor = ""
        rest = q[:m.start()] + " , " + q[m.end():]
        if kind == "closer":
            if not q[m.end() - 2:m.end()] in ("to", "by"):
                return None
            end = _CLAUSE_END.search(q, m.end())
            anchor = _ref(q[m.end():end.start() if end else len(q)]) or ""
            if not anchor:
                return None
            rest = q[:m.start()] + " , " + (q[end.start():] if end else "")
        # The clause that joins the two candidates: with "or" if any clause has it, else with "and".
        clauses = [c for c in re.split(r"[,:;?!]", rest) if c.strip()]
        for joiner in (" or ", " and "):
            joined = [c for c in clauses if joiner in c]
            if joined:
                left, _, right = joined[0].rpartition(joiner) if joined[0].count(joiner) > 1 else joined[0].partition(joiner)
                a, b = _ref(left), _ref(right)
                if a and b and a != b:
                    return Comparison(kind, a, b, anchor)
                return None
        return None
    return None


def box_measure(kind: str, box: np.ndarray, anchor: np.ndarray | None = None) -> float:
    """What `kind` compares for a (6,) min/max box: volume (bigger), height (taller) or minus the
    3D gap to `anchor`'s box (closer): the larger value wins in each."""
    size = np.maximum(box[3:] - box[:3], 0.0)
    if kind == "bigger":
        return float(np.prod(size))
    if kind == "taller":
        return float(size[2])
    if anchor is None:
        raise ValueError("a 'closer' comparison needs the anchor's box")
    gap = np.maximum(np.maximum(box[:3] - anchor[3:], anchor[:3] - box[3:]), 0.0)
    return -float(np.linalg.norm(gap))
