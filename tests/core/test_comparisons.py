"""Comparison questions read however they are phrased, and compared on boxes."""

import numpy as np
import pytest

from llm3d_core.comparisons import Comparison, box_measure, parse_comparison


@pytest.mark.parametrize("question, want", [
    ("Which is bigger, the white shelf or the book that is purple?",
     Comparison("bigger", "the white shelf", "the book that is purple")),
    ("Is the blue cup or the monitor that is white bigger?", Comparison("bigger", "the blue cup", "the monitor that is white")),
    ("Which of the red book and the tv is taller?", Comparison("taller", "the red book", "the tv")),
    ("Which one is nearer to the brown desk: the yellow book or the white waste bin?",
     Comparison("closer", "the yellow book", "the white waste bin", "the brown desk")),
    ("Is the monitor that is white or the yellow mug closer to the white shelf?",
     Comparison("closer", "the monitor that is white", "the yellow mug", "the white shelf")),
    ("hey, which takes up more space: the sofa or the lamp", Comparison("bigger", "the sofa", "the lamp")),
    ("of the shelf and the box, which one is talelr", Comparison("taller", "the shelf", "the box")),  # a typo
])
def test_comparisons_give_their_objects(question, want):
    assert parse_comparison(question) == want


@pytest.mark.parametrize("question", [
    "Which box is the biggest?",  # a superlative over a category, not two objects
    "What is the box closest to the chair?",
    "Is the mug large?",
    "Is the mug on the table or on the shelf?",  # no comparative
    "Which is bigger?",  # nothing to compare
    "Is the lamp closer?",
])
def test_other_questions_are_not_comparisons(question):
    assert parse_comparison(question) is None


def test_box_measures():
    big = np.array([0, 0, 0, 2.0, 1.0, 0.5])  # volume 1.0, height 0.5
    tall = np.array([3, 0, 0, 3.2, 0.2, 1.5])  # volume 0.06, height 1.5
    anchor = np.array([2.5, 0, 0, 2.8, 1, 1])
    assert box_measure("bigger", big) > box_measure("bigger", tall)
    assert box_measure("taller", tall) > box_measure("taller", big)
    assert box_measure("closer", tall, anchor) == pytest.approx(-0.2) and box_measure("closer", big, anchor) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="anchor"):
        box_measure("closer", big)
