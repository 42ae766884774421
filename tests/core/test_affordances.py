"""Affordance questions read from their structure and answered from the pointer's names of map objects."""

from __future__ import annotations

import pytest

from llm3d_core.affordances import AFFORDANCES, NOTHING, VERBS, affordance_answer, affordance_verb
from sim.datagen import language as L
from sim.scenes.catalog import CATALOG


def test_the_table_covers_the_catalog_longest_verbs_first():
    assert set(AFFORDANCES) == set(CATALOG) and all(AFFORDANCES.values())
    assert VERBS.index("get a drink") < VERBS.index("drink")  # longest first


@pytest.mark.parametrize("grammar", ["templates", "heldout", "varied"])
def test_every_generator_affordance_question_reads_its_verb(grammar):
    """Every template of every grammar, with every verb: the verb comes back."""
    templates = {"templates": L.AFFORD_Q, "heldout": L.HELDOUT_TEMPLATES[tuple(L.AFFORD_Q)],
                 "varied": L.VARIED_TEMPLATES[tuple(L.AFFORD_Q)]}[grammar]
    for template in templates:
        for verb in VERBS:
            assert affordance_verb(template.format(verb=verb)) == verb, template


@pytest.mark.parametrize("question", [
    "Can I sit on the chair?", "How many chairs are there?", "What is on the table?", "Where is the mug?",
    "Which is closer to the chair, the mug or the lamp?", "Where can I put things on the counter?",
    "Describe the scene.", "Is there a sofa here?", "I sit here often.", "What colour is the book?",
    "What can I store things on besides the shelves?",
])
def test_other_questions_are_not_affordance_questions(question):
    assert affordance_verb(question) is None


def test_the_answer_is_the_serving_category_most_objects_are_named():
    assert affordance_answer("sit", ["chair", "sofa", "chair", None, "table"]) == "chair"
    assert affordance_answer("sit", ["sofa", "toilet", "sofa", "chair"]) == "sofa"
    assert affordance_answer("throw away trash", ["trash can", "mug"]) == "trash can"  # the generator's word
    assert affordance_answer("watch", ["chair", "table"]) == NOTHING
    assert affordance_answer("watch", []) == NOTHING
    # a tie goes to the table's order (the generator accepts every serving category present)
    assert affordance_answer("drink", ["bottle", "mug"]) == "mug"
