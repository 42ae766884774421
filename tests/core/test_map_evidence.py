"""Answers that follow the map's evidence (llm3d_core.map_evidence): category mentions, the
hallucination rate, and the reasoner's evidence layer on a small synthetic object list and on a
tiny trained model over a small sim map."""

from __future__ import annotations

import numpy as np
import pytest

from llm3d_core.map_evidence import (MapEvidence, build_vocabulary, claim_text, claimed_categories,
                                     hallucination_rate, hallucination_stats, is_scene_caption, mentioned_categories,
                                     parse_count)
from llm3d_core.mapping.objects import DEFAULT_VOCABULARY, MapObject
from llm3d_core.reasoner import Reasoner, ReasonerConfig, saved_map_version

# The caption the shipped model gave for a real 7-Scenes kitchen map (the failure).
KITCHEN_CAPTION = ("An indoor scene with three rooms. It contains three boxes, three laptops, three mugs, three "
                   "bottles and three chairs. A red mug is on a table.")


def _obj(i: int, label: str, score: float | None = 0.9) -> MapObject:
    return MapObject(id=i, box_min=np.zeros(3), box_max=np.ones(3), centroid=np.full(3, 0.5), num_points=10,
                     feature=np.zeros(4), label=label, label_scores={} if score is None else {label: score})


def _kitchen() -> MapEvidence:
    """Two confident chairs, a confident desk (the generator's table), a bottle the labeller is unsure of."""
    objects = [_obj(0, "chair"), _obj(1, "chair", 0.7), _obj(2, "desk"), _obj(3, "bottle", 0.2), _obj(4, "")]
    return MapEvidence(objects, DEFAULT_VOCABULARY, min_confidence=0.5)


def test_mentions_find_names_plurals_and_synonyms_by_word():
    vocab = build_vocabulary()
    text = "Two cupboards, a microwave oven, bookshelves and a trash can; a seat. Tablets are not tables."
    assert mentioned_categories(text, vocab) == ["cabinet", "microwave", "shelf", "trash can", "chair", "table"]
    assert mentioned_categories("A mug and two cups.", vocab) == ["mug"]  # synonyms fold onto one category
    assert mentioned_categories("You can see a box.", vocab) == ["box"]  # "can" alone is no trash can
    assert mentioned_categories("a door and a lamp", ["door", "lamp"]) == ["door", "lamp"]  # plain names
    assert mentioned_categories("a door", []) == []
    assert build_vocabulary(["Desk", "door"])["door"] == ("door",) and "desk" not in build_vocabulary(["desk"])
    assert claimed_categories("There is no giraffe here, nor any box. A chair.", build_vocabulary(["giraffe"])) == \
        ["chair"]


def test_hallucination_rate_is_chair_i_over_answers_and_their_maps():
    held = {"chair", "table"}
    answers = [("Two chairs and a box.", held),  # chair held, box not: 1 of 2
               ("A table.", held),  # 0 of 1
               ("No idea.", held),  # names nothing: adds nothing
               (claim_text("How many mugs are there?", "3"), held),  # a count claims the category: 1 of 1
               (claim_text("How many mugs are there?", "0: there are no mugs here."), held)]  # claims none
    stats = hallucination_stats(answers)
    assert (stats.answers, stats.mentioned, stats.hallucinated, stats.answers_hallucinating) == (5, 4, 2, 2)
    assert stats.rate == pytest.approx(0.5) and stats.answer_rate == pytest.approx(0.4)
    assert hallucination_rate(answers) == stats.rate
    assert hallucination_rate([]) == 0.0 and hallucination_rate([("nothing named", held)]) == 0.0


def test_caption_loses_absent_categories_and_takes_the_maps_counts():
    ev = _kitchen()
    assert ev.held == {"chair", "table", "bottle"} and ev.trusted == {"chair", "table"}
    revised = ev.answer("Describe the scene.", KITCHEN_CAPTION)
    # boxes, laptops, mugs: no map object; bottles: only an unsure label; chairs: the map has two.
    # The sentence about a mug goes whole: the map holds no mug.
    assert revised == "An indoor scene with three rooms. It contains two chairs."
    assert mentioned_categories(revised, ev.vocabulary) == ["chair"]
    before = hallucination_rate([(KITCHEN_CAPTION, ev.held)])
    assert before == pytest.approx(3 / 6) and hallucination_rate([(revised, ev.held)]) == 0.0
    # Nothing the map holds is left in the list: it is refilled from the map, most frequent first.
    assert ev.revise_caption("It contains a door and three boxes.") == "It contains two chairs and a table."
    assert ev.revise_caption("A box.") == "The map holds two chairs and a table."
    # A list cut off by the token limit loses its broken end; a category said twice is counted once.
    assert ev.revise_caption("It contains three chairs, a table, three chairs and a ta") == \
        "It contains two chairs and a table."
    # Wording the map cannot count by stays as written.
    assert ev.revise_caption("It contains a red chair and a table.") == "It contains a red chair and a table."


def test_count_and_existence_questions_are_answered_from_a_confident_map():
    ev = _kitchen()
    assert ev.direct_answer("How many chairs are there?") == "2"
    assert ev.direct_answer("How many tables are there?") == "1"  # the mapper's desk is the generator's table
    assert ev.direct_answer("Is there a chair in the scene?") == "yes"
    # Labelable, none labelled: weak evidence only (the reasoner asks the absence head), no answer here.
    assert ev.direct_answer("How many boxes are there?") is None and ev.unlabelled("boxes")
    assert not ev.unlabelled("chairs") and not ev.unlabelled("bottle") and not ev.unlabelled("giraffe")
    assert ev.direct_answer("How many bottles are there?") is None  # held, but no confident label: the model's
    assert ev.direct_answer("How many red chairs are there?") is None  # the map has no colours
    assert ev.direct_answer("How many giraffes are there?") is None  # not a word the map can label
    assert ev.direct_answer("What colour is the chair?") is None
    assert ev.holds("chairs") and ev.holds("chair") and not ev.holds("bottle") and not ev.holds("red chair")
    assert ev.answer("What colour is the chair?", "red") == "red"  # other answers pass unchanged
    assert parse_count("There are 2 chairs.") == 2 and parse_count("three") == 3 and parse_count("many") is None


def test_a_map_without_labels_is_no_evidence():
    ev = MapEvidence([_obj(0, ""), _obj(1, "")], DEFAULT_VOCABULARY)
    assert not ev.active
    assert ev.answer("Describe the scene.", KITCHEN_CAPTION) == KITCHEN_CAPTION
    assert ev.direct_answer("How many boxes are there?") is None and not ev.unlabelled("boxes")
    unscored = MapEvidence([_obj(0, "sink", score=None)])  # a label without scores is taken as stated
    assert unscored.trusted == {"sink"}
    assert is_scene_caption("Give a summary of this scene.", "") and not is_scene_caption("Describe the highlighted "
                                                                                             "object.", "A red mug.")
    with pytest.raises(ValueError, match="evidence_min_confidence"):
        ReasonerConfig(evidence_min_confidence=1.5)


# ---------------------------------------------------------------------- the layer inside Reasoner.ask
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained to answer "What is in the room?" with "a red chair" on a small sim map."""
    from llm3d_core.reasoner import load_model
    from tests.core.test_reasoner import build_sim_map, save_tiny_llm, train_tiny_checkpoint

    root = tmp_path_factory.mktemp("evidence")
    map_dir = build_sim_map(root / "map")
    ckpt = train_tiny_checkpoint(root / "ckpt", save_tiny_llm(root / "llm"), map_dir)
    return load_model(ckpt, None, "cpu", {"device": "cpu"}), map_dir


def _reasoner(trained, labels: list[str], **config) -> Reasoner:
    """The trained model on the sim map whose first objects carry `labels` (the test map has no
    text-aligned features, so no labels of its own)."""
    from llm3d_core.mapping.mapper import FeatureFusionMapper

    model, map_dir = trained
    mapper = FeatureFusionMapper.load(map_dir, device="cpu")
    assert len(mapper.objects) >= len(labels)
    for obj, label in zip(mapper.objects, labels):
        obj.label, obj.label_scores = label, {label: 0.9}
    reasoner = Reasoner(model, ReasonerConfig(**config))
    reasoner.set_map(mapper, saved_map_version(map_dir))
    return reasoner


def test_reasoner_answers_follow_the_map(trained):
    from tests.core.test_reasoner import TRAINED_ANSWER

    plain = _reasoner(trained, ["table", "table"], map_evidence=False)
    assert plain.ask("What is in the room?")[0] == TRAINED_ANSWER == "a red chair"
    layered = _reasoner(trained, ["table", "table"])
    text, sid = layered.ask("What is in the room?")
    assert text == "The map holds two tables."  # the map has no chair: the claim goes, the map's contents come
    assert layered._sessions[sid].history[-1] == ("What is in the room?", text)  # later turns read the revision
    assert layered.ask("How many tables are there?", sid)[0] == "2"
    # No object labelled chair: without an absence head to agree, the labels alone refuse nothing
    # (on held-out sim maps they missed half the categories present); the model answers.
    assert layered.ask("How many chairs are there?")[0] == plain.ask("How many chairs are there?")[0]
    with_chair = _reasoner(trained, ["chair", "table"])
    assert with_chair.ask("What is in the room?")[0] == TRAINED_ANSWER  # a chair the map holds: unchanged
