"""Relation questions read by their structure, answered on boxes; map objects named by the pointer."""

import numpy as np
import pytest

from llm3d_core.naming import CATEGORIES, PointerNames, pointer_names
from llm3d_core.relation_questions import RelationQuestion, between, near, parse_relation_question, resting_on, supporter


@pytest.mark.parametrize("question, want", [
    ("What is the mug on?", RelationQuestion("support", "the mug")),
    ("Where is the red mug placed?", RelationQuestion("support", "the red mug")),
    ("On what is the book?", RelationQuestion("support", "the book")),
    ("What does the mug that is blue rest on?", RelationQuestion("support", "the mug that is blue")),
    ("the cup is sitting on what", RelationQuestion("support", "the cup")),
    ("Hey robot, tell me what the mug is on.", RelationQuestion("support", "the mug")),
    ("What is on the nightstand?", RelationQuestion("on_top", "the nightstand")),
    ("What's lying on the brown bed?", RelationQuestion("on_top", "the brown bed")),
    ("Name the object on the nightstand.", RelationQuestion("on_top", "the nightstand")),
    ("What lies between the bed and the big sofa?", RelationQuestion("between", "the bed", "the big sofa")),
    ("Between the bed and the sofa, what object is there?", RelationQuestion("between", "the bed", "the sofa")),
    ("Is the lamp next to the chair?", RelationQuestion("near", "the lamp", "the chair")),
    ("would you say the lamp is close to the grey chair", RelationQuestion("near", "the lamp", "the grey chair")),
    ("Are the lamp and the chair near each other?", RelationQuestion("near", "the lamp", "the chair")),
])
def test_relation_questions_give_their_objects(question, want):
    assert parse_relation_question(question) == want


@pytest.mark.parametrize("question", [
    "Is there a mug near the chair?",  # existence, not a relation between two named objects
    "What colour is the mug on the table?",
    "Which is bigger, the mug or the box?",
    "What is between them?",  # nothing named
    "Is the lamp near the lamp?",  # one object twice
    "Standing in front of the bed and facing it, is the lamp on your left or on your right?",
    "Describe the scene.",
])
def test_other_questions_are_not_relation_questions(question):
    assert parse_relation_question(question) is None


def _box(x0, y0, z0, x1, y1, z1):
    return np.array([x0, y0, z0, x1, y1, z1], dtype=float)


def test_support_on_top_between_and_near_on_boxes():
    table = _box(0, 0, 0, 1.0, 1.0, 0.75)
    mug = _box(0.4, 0.4, 0.76, 0.5, 0.5, 0.86)
    book = _box(0.6, 0.1, 0.76, 0.8, 0.3, 0.79)  # on the table too, fewer points than the mug
    chair = _box(1.3, 0.2, 0, 1.8, 0.7, 0.9)  # beside the table, on the floor
    bed = _box(4.0, 0.0, 0, 6.0, 1.0, 0.5)
    boxes = [table, mug, book, chair, bed]
    assert supporter(mug, boxes, 1) == 0
    assert supporter(chair, boxes, 3) is None  # on the floor
    assert resting_on(table, boxes, 0, points=[900, 120, 40, 300, 800]) == 1  # the larger of two things on it
    assert resting_on(bed, boxes, 4, points=[900, 120, 40, 300, 800]) is None
    # between the table and the bed (centres 4.5 m apart along x): the chair, not the mug on the table
    assert between(table, bed, boxes, (0, 4)) == 3
    assert between(table, chair, boxes, (0, 3)) is None  # centres closer than 1 m
    assert near(chair, table, 1.0) == "yes" and near(bed, table, 1.0) == "no"


def test_pointer_names_take_each_objects_highest_category():
    logits = {"the mug": [5.0, 1.0, 0.0], "the table": [0.0, 9.0, 3.0]}  # three object slots
    names = pointer_names(lambda q: np.array(logits.get(q, [-1.0, -1.0, -1.0])), [7, 8, 9])
    assert isinstance(names, PointerNames) and names.categories == CATEGORIES
    assert names.name(7) == "mug" and names.name(8) == "table" and names.name(9) == "table"
    assert names.gap(7, "mug") == 0.0 and names.gap(7, "table") == pytest.approx(5.0)
    assert names.name(99) is None and names.gap(7, "giraffe") is None
    assert pointer_names(lambda q: None, [7]) is None  # a pass without object logits names nothing
    # More map objects than the pointer's slots (the model reads a bounded number): the rest get no name.
    capped = pointer_names(lambda q: np.array(logits.get(q, [-1.0, -1.0])[:2]), [7, 8, 9])
    assert capped.name(8) == "table" and capped.name(9) is None and capped.gap(9, "mug") is None
