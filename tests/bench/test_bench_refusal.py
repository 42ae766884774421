"""`llm3d bench refusal` scoring (llm3d_bench.refusal) on hand-written answers; no model."""

import pytest

from llm3d_bench.refusal import GROUPS, SETTINGS, refusal_rows, summarise


def _row(setting, group, refused, iou=0.0):
    return {"scene": "sim_011000", "setting": setting, "group": group, "request": "", "kind": "", "refused": refused,
            "iou": iou, "message": ""}


def test_summary_and_rows():
    off, both = SETTINGS[0][0], SETTINGS[2][0]
    rows = [_row(off, "absent", False), _row(off, "absent", True), _row(off, "ground", False, 0.6),
            _row(off, "ground", False, 0.1), _row(both, "absent", True), _row(both, "absent", True),
            _row(both, "ground", False, 0.6), _row(both, "ground", True)]
    summary = summarise(rows)
    assert summary[off]["absent"] == {"n": 2, "refused": 0.5, "acc25": None}
    assert summary[both]["ground"] == {"n": 2, "refused": 0.5, "acc25": 0.5}
    assert set(summary) == {off, both} and set(summary[off]) <= set(GROUPS)
    table = refusal_rows({"summary": summary})
    assert table[0][:4] == [off, "50.0% (n=2)", "1", "50.0% (0%)"]
    assert table[1][:4] == [both, "100.0% (n=2)", "0", "50.0% (50%)"]
    assert table[1][4] == "–"  # no navigation requests in these rows


@pytest.mark.parametrize("name, share, relation, gap", SETTINGS)
def test_settings_are_reasoner_configs(name, share, relation, gap):
    from llm3d_core.reasoner import ReasonerConfig

    cfg = ReasonerConfig(grounding="model", color_min_share=share, relation_check=relation, category_check_gap=gap)
    assert cfg.relation_check == relation and cfg.category_check_gap == gap and name


def test_the_first_setting_has_every_check_off_and_the_last_the_shipped_ones():
    from llm3d_core.reasoner import ReasonerConfig

    shipped = ReasonerConfig()
    assert SETTINGS[0][1:] == (0.0, False, 0.0)
    assert SETTINGS[-1][1:] == (shipped.color_min_share, shipped.relation_check, shipped.category_check_gap)
