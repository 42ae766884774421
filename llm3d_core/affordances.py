"""Affordance questions answered from the map: "where can I sit?", "what can I use to store food?".

3D-LLM (Hong et al. 2023, sec. 3.2) lists affordance reasoning among the tasks its 3D features
serve; our model answers these from its object tokens and does it poorly in words it never saw
(test EM 48 % on the generator's templates, 27 % in the held-out phrasing: it must recognise the
verb and recall which category serves it). The verb-to-category part is a fixed table, the one the
data generator writes its answers from (sim/scenes/catalog.py reads AFFORDANCES); what the map
contributes is which of those categories are here, read from the object pointer's names of the
map's objects (llm3d_core.naming, 79 % of val objects named right).

The question is read by its structure, not template by template: one of the table's verb phrases
after "to", "I", "me", "we" or "us", a question or request word, and no category named (a question
that names a thing asks about that thing). Anything else gives None and the model answers.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

from llm3d_core.map_evidence import build_vocabulary, find_mentions
from llm3d_core.vocabulary import SYNONYMS

# Verbs each catalog category serves (catalog keys, as vocabulary.SYNONYMS).
AFFORDANCES: dict[str, tuple[str, ...]] = {
    "chair": ("sit",), "table": ("put things on", "eat", "work"), "sofa": ("sit", "lie down"),
    "bed": ("sleep", "lie down"), "cabinet": ("store things", "put things on"),
    "nightstand": ("put things on", "store things"), "counter": ("cook", "put things on"),
    "shelf": ("store things", "put books on"), "lamp": ("turn on the light",), "tv": ("watch",),
    "monitor": ("watch", "work"), "laptop": ("work",), "mug": ("drink",), "bottle": ("drink",),
    "book": ("read",), "plant": ("water",), "sink": ("wash hands", "wash dishes"), "toilet": ("sit",),
    "fridge": ("store food", "get a drink"), "microwave": ("heat food",), "box": ("store things",),
    "trash_can": ("throw away trash",),
}
# Longest first, so "get a drink" is read before "drink" and "store food" is not "store things".
VERBS: tuple[str, ...] = tuple(sorted({v for verbs in AFFORDANCES.values() for v in verbs}, key=lambda v: (-len(v), v)))
NOTHING = "nothing"  # the generator's answer when no category of the scene serves the verb

_ASKING = re.compile(r"\b(?:what|which|where|anything|something|tell me|show me)\b")
_VERB = [(v, re.compile(rf"\b(?:to|i|me|we|us)\s+{re.escape(v)}\b")) for v in VERBS]
_CATEGORIES = build_vocabulary()  # the catalog's categories and their other names


def affordance_verb(question: str) -> str | None:
    """The table's verb phrase `question` asks to do ("Which thing here lets me sit?" -> "sit"), or
    None when it is no affordance question (no verb after to/I/me/we/us, no question word, or a
    category named outside the verb phrase: "Can I sit on the chair?")."""
    text = " ".join(re.sub(r"[^\w' ]+", " ", question.lower()).split())
    if not _ASKING.search(text):
        return None
    for verb, pattern in _VERB:
        m = pattern.search(text)
        if m is None:
            continue
        return None if find_mentions(f"{text[:m.start()]} {text[m.end():]}", _CATEGORIES) else verb
    return None


def affordance_answer(verb: str, names: Iterable[str | None]) -> str:
    """The category that serves `verb` with the most map objects named after it (canonical name, as
    the generator answers: "trash can"), or NOTHING when no named object's category serves it.
    names: the pointer's category name of each map object (None for an object it has no slot for)."""
    counts = Counter(n for n in names if n is not None)
    serving = [SYNONYMS[c][0] for c, verbs in AFFORDANCES.items() if verb in verbs]
    here = [c for c in serving if counts[c] > 0]
    if not here:
        return NOTHING
    return max(here, key=lambda c: (counts[c], -serving.index(c)))
