"""`llm3d bench hallucination` scoring (llm3d_bench.hallucination) on hand-written answers; no model."""

from collections import Counter

import pytest

from llm3d_bench.hallucination import MapRun, count_questions, hallucination_rows, scores


def _run() -> MapRun:
    run = MapRun("kitchen", held={"chair", "table", "bottle"}, map_counts={"chair": 2, "table": 1},
                 truth=Counter({"chair": 2, "mug": 3}))
    run.rows = [
        {"question": "Describe the scene.", "kind": "caption", "category": "",
         "off": "It contains three boxes and three chairs.", "on": "It contains two chairs."},
        {"question": "How many chairs are there?", "kind": "count", "category": "chair", "off": "3", "on": "2"},
        {"question": "How many boxes are there?", "kind": "count", "category": "box", "off": "3",
         "on": "0: there are no boxes here."},
    ]
    return run


def test_scores_against_the_map_and_the_scene_truth():
    run = _run()
    off, on = scores(run, False), scores(run, True)
    # off: the caption claims box and chair, the count answers chair and box: 2 of 4 absent.
    assert (off["hallucinated"], off["mentioned"]) == (2, 4) and off["chair_i"] == pytest.approx(0.5)
    assert off["caption_chair_i"] == pytest.approx(0.5) and (off["count_agree"], off["count_asked"]) == (0, 1)
    assert (on["hallucinated"], on["mentioned"], on["count_agree"]) == (0, 2, 1)
    truth = scores(run, True, "truth")  # the scene holds chairs and mugs, no box: chair counts agree
    assert truth["chair_i"] == 0.0 and (truth["count_agree"], truth["count_asked"]) == (1, 1)
    rows = hallucination_rows({"maps": [{"name": "kitchen", "off": off, "on": on}]})
    assert rows[0][:4] == ["kitchen", "map objects", "off", "50.0% (2/4)"] and rows[1][3] == "0.0% (0/2)"


def test_count_questions_put_the_maps_categories_first():
    qs = count_questions({"sink", "chair"}, limit=3)
    assert [c for _, c in qs] == ["chair", "sink", "table"] and qs[0][0] == "How many chairs are there?"
    assert len(count_questions(set())) == 22  # one per generator category
