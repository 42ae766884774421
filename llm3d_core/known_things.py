"""What a request asks for, and whether it is a kind of thing the 3D-LLM knows.

The object pointer (3D-LLM §3.3's location output, read as Chat-Scene's object identifiers) was
trained to find the catalog's 22 categories by their names and synonyms (llm3d_core.vocabulary).
Asked for anything else it still ranks the map's objects, and the absence head (model/absence.py)
learned to refuse the made-up and unseen words of its training data, not every word a person may
use: on the held-out test scenes "the skateboard", a word training never saw, found an object in
3 of 3 scenes (two cabinets and a toilet). A request whose target names no category the
model knows, even allowing a typo, and no generic word ("the thing on the table") asks for
something the model cannot recognise: the reasoner says so instead of guessing (ReasonerConfig
.unknown_target).

Typing slips in known words ("latpop", "teelvision") are read as the word before anything else:
the model's tokenizer splits a mistyped word into pieces it never saw for that thing, and the
absence head refused "any chance there's a teelvision" on a map holding a TV (the reasoner corrects
every text it is given, ReasonerConfig.correct_typos).

The target is the words from the first determiner to the first relation word (`target_phrase`,
also where colour words are read, llm3d_core.colors): "the skateboard next to the chair" asks for a
skateboard, not a chair.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from llm3d_core.map_evidence import find_mentions
from llm3d_core.vocabulary import plural

# Words that ask for an object without naming its kind: any object may be meant.
GENERIC = frozenset({"object", "objects", "thing", "things", "item", "items", "something", "anything", "stuff",
                     "one", "ones", "it", "them", "this", "that", "these", "those", "there", "here"})
_MIN_TYPO_LEN = 4  # shorter words are not corrected ("tv", "bin", "can": one slip makes another word)
_MIN_DROP_LEN = 6  # nor words shorter than this for a dropped or added letter
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# Where a referring expression turns from its target to an anchor: words after it describe the
# anchor ("the mug on the blue table"), not the target.
ANCHOR = re.compile(r"\b(?:on|in|inside|at|under|underneath|below|above|over|near|nearest|closest|beside|"
                    r"next|behind|between|left|right|front|by|against|with|from|to|of)\b", re.IGNORECASE)
# The target starts at the first determiner ("go to the purple mug": not at "to").
DETERMINER = re.compile(r"\b(?:the|a|an|any|some)\b", re.IGNORECASE)


def target_phrase(expression: str) -> str:
    """The words of a referring expression that describe its target, not its anchors.

    "Go to the purple mug on the table" -> "purple mug"; "the fridge that is grey" -> "fridge that
    is grey"; "find bottle" -> "find bottle" (no determiner: from the start)."""
    det = DETERMINER.search(expression)
    start = det.end() if det else 0
    cut = ANCHOR.search(expression, start)
    return expression[start:cut.start() if cut else len(expression)].strip(" ?.!,;:")


@lru_cache(maxsize=8)
def _slips(vocab: tuple[tuple[str, ...], ...]) -> dict[str, str]:
    """Each mistyping of a known word (every word of every name and its plural, and the colour
    terms) -> that word. A mistyping is one typing slip: two neighbouring letters swapped
    ("latpop"), or, in longer words, one letter dropped ("micowave") or one added ("laptopp");
    never a letter replaced, since that makes other words ("chain" is not a chair, "cable" not a
    table). A slip that is itself a known word, or a slip of two known words, is left alone."""
    from llm3d_core.colors import COLOR_SYNONYMS, COLOR_TERMS

    words = {w for names in vocab for name in names for form in (name, plural(name)) for w in form.lower().split()}
    words |= {w for form in (*COLOR_TERMS, *COLOR_SYNONYMS) for w in form.split()}
    slips: dict[str, set[str]] = {}
    for w in words:
        if len(w) < _MIN_TYPO_LEN:
            continue
        variants = {w[:i] + w[i + 1] + w[i] + w[i + 2:] for i in range(len(w) - 1)}  # swaps
        if len(w) >= _MIN_DROP_LEN:  # a shorter word less one letter is often a word ("plan", "able")
            variants |= {w[:i] + w[i + 1:] for i in range(len(w))}  # drops
            variants |= {w[:i] + c + w[i:] for i in range(len(w) + 1) for c in "abcdefghijklmnopqrstuvwxyz"}  # additions
        for v in variants - words:
            if len(v) >= _MIN_TYPO_LEN:
                slips.setdefault(v, set()).add(w)
    return {v: next(iter(ws)) for v, ws in slips.items() if len(ws) == 1}


def correct_typos(text: str, vocabulary: Mapping[str, Iterable[str]]) -> str:
    """`text` with each mistyped known word (`_slips`: a category name of `vocabulary`, category
    -> names, or a colour term) replaced by the word: "the garabge bin" -> "the garbage bin"."""
    slips = _slips(tuple(tuple(names) for names in vocabulary.values()))
    return _WORD.sub(lambda m: slips.get(m.group(0).lower(), m.group(0)), text)


def unknown_target(expression: str, vocabulary: Mapping[str, Iterable[str]]) -> str | None:
    """The target phrase of `expression` when it names no category of `vocabulary` (category ->
    names), even allowing a typo, and no GENERIC word; None when it names one, or is empty."""
    phrase = target_phrase(expression)
    words = [w.lower() for w in _WORD.findall(phrase)]
    if not words or any(w in GENERIC for w in words):
        return None
    if find_mentions(correct_typos(phrase, vocabulary), vocabulary):
        return None
    return phrase
