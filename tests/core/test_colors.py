"""Colour words of a referring expression's target, and the colour terms a set of voxel colours shows."""

import numpy as np
import pytest

from llm3d_core.colors import COLOR_TERMS, color_shares, color_words, missing_colors, target_color_words


@pytest.mark.parametrize("text, want", [
    ("the purple mug", ["purple"]),
    ("Go to the white mug on the blue table", ["white"]),  # blue is the anchor's
    ("the mug on the blue table", []),
    ("the fridge that is grey", ["gray"]),  # synonyms fold onto the term
    ("Navigate to the navy blue sofa.", ["navy"]),  # the longer form wins over "blue"
    ("purple mug", ["purple"]),
    ("Is there a Teal lamp next to the bed?", ["teal"]),
    ("the chair left of the red sofa", []),
])
def test_target_colour_words(text, want):
    assert target_color_words(text) == want


def test_colour_words_each_once_in_order():
    assert color_words("grey, navy blue and GREY again") == ["gray", "navy"]


def test_shaded_paint_still_shows_its_colour_and_not_far_ones():
    rng = np.random.default_rng(0)
    for name, rgb in COLOR_TERMS.items():
        paint = np.asarray(rgb, float) / 255
        shading = rng.uniform(0.55, 1.0, size=(200, 1))  # light and surface angle change brightness
        shares = color_shares(np.clip(paint * shading, 0, 1))
        assert shares.get(name, 0) >= 0.5, (name, shares)
    red = color_shares(np.tile([[0.75, 0.15, 0.15]], (50, 1)))
    for far in ("green", "blue", "purple", "white", "teal"):
        assert red.get(far, 0) == 0, (far, red)


def test_missing_colours_needs_evidence():
    shares = {"red": 0.8, "orange": 0.6}
    assert missing_colors("the purple mug", shares, 0.1) == ["purple"]
    assert missing_colors("the red mug", shares, 0.1) == []
    assert missing_colors("the mug", shares, 0.1) == []
    assert missing_colors("the purple mug", {}, 0.1) == []  # colours unknown: nothing to refuse on
    assert color_shares(np.zeros((0, 3))) == {} and color_shares(np.full((3, 3), np.nan)) == {}
