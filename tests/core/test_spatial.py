"""Relations stated in requests, and the box tests that check them against the map (llm3d_core.spatial)."""

import numpy as np
import pytest

from llm3d_core.spatial import Relation, holds, parse_relation, rests_on, xy_gap


@pytest.mark.parametrize("text, want", [
    ("Take me to the cabinet on the desk.", ("cabinet", "on", "on", "desk")),
    ("Go to the chair next to the microwave.", ("chair", "near", "next to", "microwave")),
    ("the potted plant near the laptop", ("potted plant", "near", "near", "laptop")),
    ("Find the mug sitting on the table and stop next to it.", ("mug", "on", "on", "table")),
    ("the book that is stored in the shelf", ("book", "in", "in", "shelf")),
    ("Could you take me to the red mug on top of the nightstand, please?", ("red mug", "on", "on top of", "nightstand")),
    ("THE LAMP BESIDE THE BED", ("lamp", "near", "beside", "bed")),
])
def test_one_relation_to_an_object_is_read(text, want):
    rel = parse_relation(text)
    assert rel == Relation(*want)
    assert rel.anchor_query == f"the {want[3]}"


@pytest.mark.parametrize("text", [
    "Go to the mug that is blue.",  # no relation
    "Find the black fridge and stop next to it.",  # "next to it" names no anchor
    "the box closest to the chair",  # superlative: always some box is closest
    "the mug on the table next to the lamp",  # nested
    "find a cup in the kitchen",  # a place, not an object
    "the lamp on the left",
    "the chair by the window",  # "by" is left out: "by the window" is said of far things too
    "",
])
def test_no_opinion_without_one_plain_relation(text):
    assert parse_relation(text) is None


def _box(lo, hi):
    return np.array([*lo, *hi], dtype=np.float64)


def test_box_relations():
    table = _box((0, 0, 0), (1.2, 0.8, 0.75))
    mug = _box((0.5, 0.3, 0.75), (0.6, 0.4, 0.85))  # on its top
    chair = _box((1.3, 0.2, 0.0), (1.8, 0.7, 0.9))  # on the floor beside it
    shelf = _box((3, 0, 0), (3.8, 0.4, 1.6))
    book = _box((3.2, 0.1, 0.08), (3.3, 0.3, 0.3))  # on its lowest inner board
    assert rests_on(mug, table) and rests_on(book, shelf)
    assert not rests_on(chair, table) and not rests_on(table, mug) and not rests_on(mug, shelf)
    assert xy_gap(chair, table) == pytest.approx(0.1) and xy_gap(mug, table) == 0.0
    near, on = Relation("chair", "near", "next to", "table"), Relation("mug", "on", "on", "table")
    assert holds(near, chair, table, 1.0) and not holds(near, shelf, table, 1.0)
    assert holds(on, mug, table, 1.0) and not holds(on, chair, table, 1.0)


def test_the_generator_relations_hold_on_true_boxes():
    """On the procedural scenes' own boxes, every object the scene puts on or in a support rests on
    it, no floor object rests on anything, and the "near" gap is the generator's."""
    from sim.datagen import relations as R
    from sim.scenes import generate_scene, seeds

    supported = 0
    for seed in seeds("test", 3):
        scene = generate_scene(seed)
        by_id = {i.id: i for i in scene.instances}
        box = {i.id: _box(i.box_min, i.box_max) for i in scene.instances}
        for inst in scene.instances:
            if inst.support_relation in ("on", "in") and inst.support_id in by_id:
                assert rests_on(box[inst.id], box[inst.support_id]), (seed, inst.category)
                supported += 1
            elif inst.support_relation == "floor":
                assert not any(rests_on(box[inst.id], box[o.id]) for o in scene.instances if o.id != inst.id)
            for other in scene.instances[:5]:
                assert xy_gap(box[inst.id], box[other.id]) == pytest.approx(R.xy_gap(inst, other))
    assert supported > 10
