"""Size-class questions read however they are phrased, and sizes classed from a box's largest side."""

import pytest

from llm3d_core.sizes import SIZE_LIMITS_M, size_class, size_question_ref


@pytest.mark.parametrize("question, ref", [
    ("Is the book that is red small, medium or large?", "the book that is red"),
    ("What size class is the bottle nearest to the cabinet (small, medium, large)?", "the bottle nearest to the cabinet"),
    ("How big is the grey kitchen counter: small, medium or large?", "the grey kitchen counter"),
    ("Hey robot, how large is the mug on the table (small or large)?", "the mug on the table"),  # 'large' asked, then offered
    ("would you call that lamp small, meduim or large", "that lamp"),  # a typo in an offered class
    ("Tell me whether the cup is small / medium / large.", "the cup"),
])
def test_size_questions_give_their_referring_expression(question, ref):
    assert size_question_ref(question) == ref


@pytest.mark.parametrize("question", [
    "Is the mug large?",  # one class is a yes/no question, not a choice of classes
    "Which is bigger, the mug or the small box?",
    "What colour is the large box?",
    "Small, medium or large?",  # nothing named before the classes
    "How many large boxes and small mugs are there?",
])
def test_other_questions_are_not_size_questions(question):
    assert size_question_ref(question) is None


def test_size_class_from_the_largest_side():
    small, medium = SIZE_LIMITS_M
    assert size_class(small - 0.01) == "small" and size_class(small) == "medium"
    assert size_class(medium - 0.01) == "medium" and size_class(medium + 0.5) == "large"
    assert size_class(0.5, (0.6, 2.0)) == "small"
