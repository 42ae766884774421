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


@pytest.mark.parametrize("name, fields", SETTINGS)
def test_settings_are_reasoner_configs(name, fields):
    from llm3d_core.reasoner import ReasonerConfig

    cfg = ReasonerConfig(grounding="model", **fields)
    assert all(getattr(cfg, k) == v for k, v in fields.items()) and name


def test_the_first_setting_has_every_check_off_and_the_last_the_shipped_ones():
    from llm3d_core.reasoner import ReasonerConfig

    shipped = ReasonerConfig()
    checks = ("color_min_share", "relation_check", "category_check_gap", "unknown_target")
    assert set(SETTINGS[0][1]) == set(SETTINGS[-1][1]) == set(checks)
    assert not any(SETTINGS[0][1].values())  # 0 / False: off
    assert all(SETTINGS[-1][1][k] == getattr(shipped, k) for k in checks)
