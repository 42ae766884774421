"""The phrasings of the language data (sim.datagen.language): the held-out grammar, never trained on,
and the varied training grammar, both asking the same records as the templates in other words."""

from __future__ import annotations

import re
import string

import pytest

from sim.config import AgentConfig
from sim.datagen import DatagenConfig, generate_records, validate_record
from sim.datagen import language as L
from sim.navmesh import build_navgrid
from sim.scenes import generate_scene

SEEDS = (3, 11007)  # a train and a test scene


@pytest.fixture(scope="module")
def scenes():
    out = []
    for seed in SEEDS:
        scene = generate_scene(seed)
        out.append((scene, build_navgrid(scene.mesh(), AgentConfig())))
    return out


def _pattern(template: str) -> re.Pattern:
    """A template as a regex: slots match any text; case and the final mark are free."""
    body = re.escape(template.rstrip("?.!"))
    for slot in ("ref", "things", "a_thing", "a", "b", "x", "anchor", "verb", "goal"):
        body = body.replace(re.escape("{" + slot + "}"), ".+")
    return re.compile(body + r"[?.!]?", re.IGNORECASE)


def _same_records(other: list[dict], base: list[dict]) -> None:
    assert len(other) == len(base)
    for o, b in zip(other, base):
        validate_record(o)
        assert {k: v for k, v in o.items() if k not in ("question", "turns")} == \
               {k: v for k, v in b.items() if k not in ("question", "turns")}


def test_heldout_phrasing_asks_the_same_things_in_other_words(scenes):
    """phrasing 'heldout': the same records (ids, answers, objects, absent targets too) with
    questions from a grammar the training templates (base and varied) never use."""
    # the base templates and the varied training grammar (a varied template must not cover a held-out
    # question either, e.g. "{ref}: small, medium or large?" would cover "Size of {ref}: …")
    train_templates = [t for ts in L.HELDOUT_TEMPLATES for t in ts] + \
                      [t for ts in L.VARIED_TEMPLATES.values() for t in ts]
    changed = total = 0
    for scene, grid in scenes:
        held = generate_records(scene, DatagenConfig(seed=1, absent=6, phrasing="heldout"), grid=grid)
        base = generate_records(scene, DatagenConfig(seed=1, absent=6), grid=grid)
        assert len(held) == len(base)
        for h, b in zip(held, base):
            validate_record(h)
            assert {k: v for k, v in h.items() if k not in ("question", "turns")} == \
                   {k: v for k, v in b.items() if k not in ("question", "turns")}
            if h["task"] in ("qa", "ground", "navigate", "plan", "caption"):
                total += 1
                changed += h["question"] != b["question"]
                # no held-out question is a training template with its slots filled
                assert not any(re.fullmatch(re.escape(t).replace(r"\{", "{").replace(r"\}", "}")
                                            .replace("{ref}", ".+").replace("{things}", ".+").replace("{a_thing}", ".+")
                                            .replace("{a}", ".+").replace("{b}", ".+").replace("{x}", ".+")
                                            .replace("{anchor}", ".+").replace("{verb}", ".+").replace("{goal}", ".+"),
                                            h["question"]) for t in train_templates), h["question"]
    assert changed / total > 0.8
    with pytest.raises(ValueError, match="phrasing"):
        DatagenConfig(phrasing="poetry")


def test_varied_phrasing_widens_training_without_touching_the_heldout_grammar(scenes):
    """phrasing 'varied': the same records, about half the questions in the wider training grammar,
    with training noise; no varied question, request or opener is one of the held-out grammar's."""
    heldout = [_pattern(t) for ts in L.HELDOUT_TEMPLATES.values() for t in ts]
    requests = [_pattern(t) for t in L.HELDOUT_REQUESTS if t != "{ref}"]
    assert not any(p.fullmatch(t) for p in requests for t in L.VARIED_REQUESTS)
    for key, alts in L.VARIED_TEMPLATES.items():
        slots = {f for t in key for _, f, _, _ in string.Formatter().parse(t) if f}
        for t in alts:
            assert {f for _, f, _, _ in string.Formatter().parse(t) if f} == slots, t
            assert not any(p.fullmatch(t) for p in heldout), f"varied template {t!r} is a held-out one"
    assert not set(L.VARIED_REQUESTS) & set(L.HELDOUT_REQUESTS)
    assert not {o.lower() for o in L.TRAIN_OPENERS} & {o.lower() for o in L.HELDOUT_OPENERS}

    changed = total = lowered = opened = 0
    for scene, grid in scenes:
        varied = generate_records(scene, DatagenConfig(seed=1, absent=6, phrasing="varied"), grid=grid)
        base = generate_records(scene, DatagenConfig(seed=1, absent=6), grid=grid)
        _same_records(varied, base)
        assert varied == generate_records(scene, DatagenConfig(seed=1, absent=6, phrasing="varied"), grid=grid)
        for v, b in zip(varied, base):
            if v["task"] not in ("qa", "ground", "navigate", "plan", "caption"):
                continue
            total += 1
            changed += v["question"] != b["question"]
            lowered += v["question"] == v["question"].lower() and b["question"] != b["question"].lower()
            opened += v["question"].lower().startswith(tuple(o.lower() for o in L.TRAIN_OPENERS))
            # a varied question contains no held-out template (noise aside, which is its own)
            assert not any(p.fullmatch(v["question"]) for p in heldout), v["question"]
    assert 0.4 < changed / total < 0.9, (changed, total)
    assert lowered / total > 0.15 and opened / total > 0.05, (lowered, opened, total)
    with pytest.raises(ValueError, match="not both"):
        L.Phraser(None, heldout=object(), varied=object())
