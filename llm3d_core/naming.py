"""Map objects named by the 3D-LLM's own object pointer: "what is this object?" answered by asking
for every category ("the mug", "the table", …) and giving each object the category whose request
points at it hardest.

The mapper's labels come from an ImageNet classifier through ConSE (llm3d_core.mapping.objects) and
name 8 % of the val maps' objects with their true category; the object pointer (3D-LLM §3.3's
location output, read as Chat-Scene's object identifiers) was trained on the same object tokens to
find "the mug" among the others, and read backwards it names 79 % of them (233 objects of the 10 val
maps; docs/model.md, "Map objects named by the pointer"). A category's logits rank objects against each
other; an object's logits across categories are compared raw, since every request is decoded the
same way over the same map: normalising per request (softmax or z-score over objects) named 60-67 %.

Used where the answer is a map object's name and the question did not name it: what a thing stands
on, what lies between two things (llm3d_core.relation_questions); and where a request names a category
the object it would get does not look like (the reasoner's category check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from llm3d_core.vocabulary import SYNONYMS

# The catalog's categories by their canonical names ("trash can"), the names the model was trained on.
CATEGORIES: tuple[str, ...] = tuple(sorted(names[0] for names in SYNONYMS.values()))


def naming_request(category: str) -> str:
    """The request whose pointer logits name objects `category`: "the <category>"."""
    return f"the {category}"


@dataclass(frozen=True)
class PointerNames:
    """The pointer's logit of each map object for each category's request."""

    categories: tuple[str, ...]  # C canonical category names
    object_ids: tuple[int, ...]  # P map object ids, in the pointer's slot order
    logits: np.ndarray  # (C, P) logit of object p for "the <category c>"

    def _slot(self, object_id: int) -> int | None:
        try:
            return self.object_ids.index(int(object_id))
        except ValueError:
            return None

    def name(self, object_id: int) -> str | None:
        """The category `object_id` is named (None for an object the pointer has no slot for)."""
        p = self._slot(object_id)
        return None if p is None else self.categories[int(np.argmax(self.logits[:, p]))]

    def gap(self, object_id: int, category: str) -> float | None:
        """How far below the object's best category `category`'s logit is (0 when it is the best;
        None for an unknown object or category)."""
        p = self._slot(object_id)
        if p is None or category not in self.categories:
            return None
        column = self.logits[:, p]  # (C,)
        return float(column.max() - column[self.categories.index(category)])


def pointer_names(object_logits: Callable[[str], "np.ndarray | None"], object_ids: Sequence[int],
                  categories: Sequence[str] = CATEGORIES) -> PointerNames | None:
    """Ask `object_logits` ("the <category>" -> (>= P,) pointer logits over the map's object slots,
    or None when the model gave none) for every category; None when any request gave none."""
    rows = []
    for category in categories:
        logits = object_logits(naming_request(category))
        if logits is None:
            return None
        rows.append(np.asarray(logits, dtype=np.float64).reshape(-1))
    # The pointer reads at most the model's object-token budget: objects past it get no name (the
    # 74-object kitchen map gives it 48), and padded slots past the map's objects none either.
    width = min(len(object_ids), *(len(r) for r in rows))
    return PointerNames(tuple(categories), tuple(int(i) for i in object_ids[:width]),
                        np.stack([r[:width] for r in rows]))
