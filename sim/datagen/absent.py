"""Referring expressions whose target the scene does not hold (`DatagenConfig.absent`): what the
absence head learns to refuse ("nothing in the map matches"). Each is a ground record answered
ABSENT_ANSWER with no object: a category the scene lacks, a thing no procedural scene holds (test
scenes use their own word list), a made-up word, a present category in a colour none of its
instances has, or a relation none satisfies. With `absent_lookalike` some absent categories are
hard ones: a category the scene lacks asked for where a look-alike of it stands ("the black tv" beside
a black monitor), the look-alike asked the same way as its present companion."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from llm3d_core.model.configuration_llm3d import ABSENT_ANSWER
from sim.datagen import language as L
from sim.datagen import relations as R
from sim.scenes.catalog import CATALOG, PALETTE, SUPPORTS

if TYPE_CHECKING:
    from sim.datagen.generator import DatagenConfig, RecordMaker, SceneFacts

ABSENT_KINDS = {"category": 0.3, "novel": 0.2, "attribute": 0.25, "relation": 0.15, "gibberish": 0.1}
LOOKALIKE_COUNT = 4  # look-alikes per category


def _lookalikes() -> dict[str, tuple[str, ...]]:
    """Each category's LOOKALIKE_COUNT nearest in size: the largest ratio over width, depth and height
    of the mid sizes of their catalog ranges. What a map's object of one may pass for the other when
    only its box and a coarse feature tell them apart (a tv for a monitor, a fridge for a shelf)."""
    def mid(name: str) -> np.ndarray:
        c = CATALOG[name]
        return np.log((np.asarray(c.size_min) + np.asarray(c.size_max)) / 2)

    out = {}
    for a in CATALOG:
        dist = sorted((float(np.abs(mid(a) - mid(b)).max()), b) for b in CATALOG if b != a)
        out[a] = tuple(b for _, b in dist[:LOOKALIKE_COUNT])
    return out


LOOKALIKES = _lookalikes()


def absent_records(facts: "SceneFacts", make: "RecordMaker", cfg: "DatagenConfig") -> list[dict]:
    """`cfg.absent` referring expressions whose target the scene does not hold, kinds drawn by
    ABSENT_KINDS' weights; a third are phrased as navigation requests ("Go to the giraffe.").
    Each absent category comes with a present one asked the same way (qtype category): for a
    look-alike one (`cfg.absent_lookalike`), the look-alike itself when it is unique."""
    ph, rng = facts.ph, facts.ph.rng
    companion: list = []  # the look-alike _absent_lookalike chose, asked about beside it

    def category(f: "SceneFacts") -> str | None:
        # Draw the look-alike coin only when asked to, so records made without it stay as they were.
        hard = cfg.absent_lookalike > 0 and rng.random() < cfg.absent_lookalike
        phrase, inst = _absent_lookalike(f) if hard else (None, None)
        companion[:] = [inst] if inst is not None else []
        return phrase or _absent_category(f)

    builders = {"category": category, "novel": _absent_novel, "attribute": _absent_attribute,
                "relation": _absent_relation, "gibberish": lambda f: f"the {L.gibberish(f.ph.rng)}"}
    kinds, weights = list(ABSENT_KINDS), np.array(list(ABSENT_KINDS.values()))
    out, seen = [], set()
    for _ in range(4 * cfg.absent):
        if len(seen) >= cfg.absent:
            break
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        phrase = builders[kind](facts)
        if phrase is None or phrase in seen:
            continue
        seen.add(phrase)
        as_request = rng.random() < 1 / 3
        ask = (lambda text: ph.fill(L.NAV_Q, ref=text)) if as_request else ph.request
        out.append(make("ground", f"absent/{kind}", ask(phrase), [ABSENT_ANSWER], [], unique=False))
        if kind == "category":
            # The same bare form about a category the scene does hold: without it, a category that
            # many scenes lack ("the bed") is absent far more often than present in the data, and
            # the abstention learns the word instead of the map.
            unique = [i for i in facts.insts if facts.is_unique(i)]
            if companion and facts.is_unique(companion[0]):
                unique = companion
            if unique:
                inst = ph.pick(unique)
                out.append(make("ground", "category", ask(f"the {ph.name(inst.category)}"), L.names(inst.category),
                                [inst], unique=True))
    return out


def _absent_category(facts: "SceneFacts") -> str | None:
    """A catalog category this scene has none of, sometimes with a colour."""
    missing = sorted(set(CATALOG) - set(facts.by_cat))
    if not missing:
        return None
    cat = facts.ph.pick(missing)
    if facts.ph.rng.random() < 0.4:
        return f"the {facts.ph.color(facts.ph.pick(CATALOG[cat].colors))} {facts.ph.name(cat)}"
    return f"the {facts.ph.name(cat)}"


def _absent_lookalike(facts: "SceneFacts") -> tuple[str | None, object]:
    """A category this scene lacks that a present one looks like, with the look-alike instance; half
    the time in a colour that instance has (the category's own palette allowing), which the map's
    colours cannot refuse. (None, None) when the scene holds no look-alike of a missing category."""
    ph = facts.ph
    pairs = [(cat, inst) for cat in sorted(set(CATALOG) - set(facts.by_cat)) for like in LOOKALIKES[cat]
             for inst in facts.by_cat.get(like, [])]
    if not pairs:
        return None, None
    cat, inst = pairs[int(ph.rng.integers(len(pairs)))]
    if ph.rng.random() < 0.5:
        color = inst.color if inst.color in CATALOG[cat].colors else ph.pick(CATALOG[cat].colors)
        return f"the {ph.color(color)} {ph.name(cat)}", inst
    return f"the {ph.name(cat)}", inst


def _absent_novel(facts: "SceneFacts") -> str:
    """Something no procedural scene holds; test scenes use words train and val never do."""
    words = L.NOVEL_HELDOUT if facts.scene.split == "test" else L.NOVEL_TRAIN
    return f"the {facts.ph.pick(words)}"


def _absent_attribute(facts: "SceneFacts") -> str | None:
    """A present category in a colour none of its instances has ("the purple mug" beside a red one)."""
    cat = facts.ph.pick(sorted(facts.by_cat))
    held = {i.color for i in facts.by_cat[cat]}
    colors = [c for c in CATALOG[cat].colors if c not in held] or [c for c in PALETTE if c not in held]
    if not colors:
        return None
    c, name = facts.ph.color(facts.ph.pick(colors)), facts.ph.name(cat)
    return facts.ph.pick((f"the {c} {name}", f"the {name} that is {c}"))


def _absent_relation(facts: "SceneFacts") -> str | None:
    """A present category and a present anchor in a relation no instance has: on/in a support
    category none of them stands on, or next to an anchor all of them are far from."""
    ph = facts.ph
    cat = ph.pick(sorted(facts.by_cat))
    group = facts.by_cat[cat]
    anchors = [a for a in sorted(facts.by_cat) if a != cat]
    if not anchors:
        return None
    anchor = ph.pick(anchors)
    name, aname = ph.name(cat), ph.name(anchor)
    if ph.rng.random() < 0.5 and anchor in SUPPORTS:
        if all(facts.support(i) is None or facts.support(i).category != anchor for i in group):
            return f"the {name} on the {aname}"
        return None
    if all(R.xy_gap(i, a) >= R.FAR_M for i in group for a in facts.by_cat[anchor]):
        return f"the {name} {ph.pick(('next to', 'near', 'beside'))} the {aname}"
    return None
