"""Location tokens: encode/decode round trip within one bin, and strict grammar errors."""

import numpy as np
import pytest

from llm3d_core.model.location_tokens import (LocationDecodeError, SceneBounds, decode_box, decode_point, encode_box,
                                              encode_point, split_location_answer)

BOUNDS = SceneBounds(np.array([-2.0, -1.0, -0.1]), np.array([6.0, 5.0, 2.7]))


def test_box_round_trip_within_one_bin():
    rng = np.random.default_rng(0)
    for _ in range(200):
        lo = rng.uniform(BOUNDS.lo, BOUNDS.hi)
        hi = np.minimum(lo + rng.uniform(0.05, 2.0, 3), BOUNDS.hi - 1e-9)
        box = np.concatenate([lo, hi])
        label, decoded = decode_box("red chair " + encode_box(box, BOUNDS), BOUNDS)
        assert label == "red chair"
        err = np.abs(decoded - box).reshape(2, 3)
        assert np.all(err <= BOUNDS.bin_size + 1e-9)
        assert np.all(decoded[:3] <= box[:3] + 1e-9) and np.all(decoded[3:] >= box[3:] - 1e-9)  # contains it


def test_point_round_trip_and_clipping():
    p = np.array([1.234, 2.5, 0.8])
    text = encode_point(p, BOUNDS)
    assert text.count("<loc_") == 3
    assert np.all(np.abs(decode_point(text, BOUNDS) - p) <= BOUNDS.bin_size / 2 + 1e-9)
    far = decode_point(encode_point(np.array([100.0, -100.0, 1.0]), BOUNDS), BOUNDS)
    assert far[0] < BOUNDS.hi[0] and far[1] > BOUNDS.lo[1]  # clipped into the edge bins


@pytest.mark.parametrize("text", [
    "chair <loc_1><loc_2><loc_3><loc_4><loc_5>",  # too few
    "chair <loc_1><loc_2><loc_3><loc_4><loc_5><loc_6><loc_7>",  # too many
    "chair <loc_1><loc_2><loc_3> and <loc_4><loc_5><loc_6>",  # text between
    "chair <loc_1><loc_2><loc_3><loc_4><loc_5><loc_6> extra",  # text after
    "chair <loc_1><loc_2><loc_3><loc_4><loc_5><loc_300>",  # out of range
    "chair <loc_9><loc_2><loc_3><loc_4><loc_5><loc_6>",  # max below min
    "chair <loc_1><loc_2><loc_3><loc_4><loc_5><loc_6><loc_",  # malformed tail
    "a chair",  # no tokens
])
def test_box_grammar_errors(text):
    with pytest.raises(LocationDecodeError):
        decode_box(text, BOUNDS)


def test_point_grammar_errors():
    with pytest.raises(LocationDecodeError):
        decode_point("go <loc_1><loc_2><loc_3>", BOUNDS)  # words before a goal
    with pytest.raises(LocationDecodeError):
        decode_point("<loc_1><loc_2>", BOUNDS)
    assert split_location_answer(" <loc_1> <loc_2> <loc_3> ", 3) == ("", [1, 2, 3])


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError):
        SceneBounds(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError):
        encode_box(np.array([1, 1, 1, 0, 0, 0.0]), BOUNDS)
