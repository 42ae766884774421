"""Size classes read from the map: "is the mug small, medium or large?" answered from the mug's box.

The 3D-LLM answers a size class from its object tokens, and a phrasing it never saw costs it a third
of them (test EM 70 % on the generator's templates, 42.5 % on the held-out phrasing). The map holds
the measurement itself: a map object's box. An object is small when its largest side is under
0.35 m, medium under 1.0 m, large from there (SIZE_LIMITS_M; the data generator states sizes with
the same limits, sim/datagen/relations.py).

A size-class question is one that offers at least two of the three classes, however it is phrased
("How big is the mug: small, medium or large?", "would you call the grey cup small, medium or large"
— typos within one or two letters count); its referring expression runs from the first determiner
to that list of classes.
"""

from __future__ import annotations

import difflib
import re

SIZE_CLASSES = ("small", "medium", "large")
SIZE_LIMITS_M = (0.35, 1.0)  # largest box side: below the first small, below the second medium
_WORD = re.compile(r"[a-z]+")
_DETERMINER = re.compile(r"\b(?:the|a|an|this|that)\b")
_OPTIONS_GAP = 16  # characters between two offered classes ("small, medium or large", "small / large")


def size_class(largest_side_m: float, limits: tuple[float, float] = SIZE_LIMITS_M) -> str:
    """"small" | "medium" | "large" for a box whose largest side is `largest_side_m` metres."""
    return "small" if largest_side_m < limits[0] else "medium" if largest_side_m < limits[1] else "large"


def _class_word(word: str) -> str | None:
    """The size class `word` spells, allowing a typo ("meidum" -> "medium"), or None."""
    if word in SIZE_CLASSES:
        return word
    close = difflib.get_close_matches(word, SIZE_CLASSES, n=1, cutoff=0.8)
    return close[0] if close else None


def size_question_ref(question: str) -> str | None:
    """The referring expression of a size-class question ("the book that is red"), or None when
    `question` does not offer at least two size classes or names nothing before them."""
    q = question.lower()
    words = [(m.start(), cls) for m in _WORD.finditer(q) if (cls := _class_word(m.group()))]
    for (start, first), (nxt, second) in zip(words, words[1:]):
        if first != second and nxt - start <= _OPTIONS_GAP:
            det = None
            for det in _DETERMINER.finditer(q, 0, start):
                break
            if det is None:
                return None
            ref = q[det.start():start].strip(" ,:;(-")
            ref = re.sub(r"\s*(?::|\(|,|-)\s*$", "", ref).strip()
            ref = re.sub(r"\s+(?:is|are|was|were|be)$", "", ref)  # "whether the cup is small, …"
            return ref if len(ref.split()) >= 2 else None
    return None
