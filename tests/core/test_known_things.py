"""What a request asks for, and whether it is a kind of thing the model knows (llm3d_core.known_things)."""

import pytest

from llm3d_core.known_things import correct_typos, target_phrase, unknown_target
from llm3d_core.map_evidence import build_vocabulary

VOCAB = build_vocabulary()


@pytest.mark.parametrize("text, want", [
    ("Go to the purple mug on the table.", "purple mug"),
    ("the fridge that is grey", "fridge that is grey"),
    ("the skateboard next to the chair", "skateboard"),
    ("Can you find the skateboard?", "skateboard"),
    ("find bottle", "find bottle"),  # no determiner: from the start
])
def test_target_phrase(text, want):
    assert target_phrase(text) == want


def test_typos_are_read_as_the_known_word_they_are_close_to():
    assert correct_typos("the garabge bin", VOCAB) == "the garbage bin"
    assert correct_typos("Show me the latpop that is black", VOCAB) == "Show me the laptop that is black"
    assert correct_typos("the kitchen cuonter", VOCAB) == "the kitchen counter"
    assert correct_typos("the gary micowave", VOCAB) == "the gray microwave"  # colours; a dropped letter
    # A replaced letter makes other words; so does a dropped one in a short word; short words stay.
    for text in ("the chain", "the cable", "the plan", "the able", "the tc", "the skateboard"):
        assert correct_typos(text, VOCAB) == text


@pytest.mark.parametrize("text", [
    "Can you find the skateboard?", "the skateboard next to the chair", "Go to the giraffe.", "the xqzvblorfwub",
    "go to the kitchen", "the coffee machine", "the teddy bear on the bed",
])
def test_things_the_model_never_learned_are_unknown(text):
    assert unknown_target(text, VOCAB) is not None


@pytest.mark.parametrize("text", [
    "the chair", "the cups", "Walk over to the TVs.", "the couch next to the skateboard",  # the target is a couch
    "show me the gray cupobard", "Can you find the btotle that is red?", "The black notebook comptuer",  # typos
    "the thing on the table", "the red one", "go there", "", "?",  # generic or no target: the model decides
])
def test_known_generic_or_empty_targets_are_not_unknown(text):
    assert unknown_target(text, VOCAB) is None


def test_the_generator_s_requests_are_known_exactly_when_their_target_exists():
    """Every present target the data generator writes names a known category (in the held-out
    phrasing, with its typos); every made-up and never-seen word it writes for absent targets does not."""
    from sim.datagen import language as L

    for word in L.NOVEL_TRAIN + L.NOVEL_HELDOUT:
        assert unknown_target(f"Where is the {word}?", VOCAB) == word
    for names in VOCAB.values():
        for name in names:
            assert unknown_target(f"Could you drive to the {name} next to the bed?", VOCAB) is None
