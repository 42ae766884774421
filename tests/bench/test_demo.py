"""`llm3d demo --quick`: a held-out scene explored, mapped, questioned and navigated, with a report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llm3d_bench.demo import DemoConfig, pick_records


def test_demo_config_rejects_bad_values():
    with pytest.raises(ValueError, match="split"):
        DemoConfig(split="holdout")
    with pytest.raises(ValueError, match="success_distance"):
        DemoConfig(success_distance=float("nan"))


def test_pick_records_spreads_question_types_and_prefers_unique_referents():
    recs = [{"task": "qa", "qtype": t, "question": f"{t}{i}", "answers": ["x"]} for t in ("color", "count") for i in range(3)]
    recs += [{"task": "ground", "qtype": "category", "question": f"g{i}", "unique": i == 2, "boxes": [[0] * 6]}
             for i in range(3)]
    picked = pick_records(recs, DemoConfig(questions=2, groundings=1), np.random.default_rng(0))
    assert sorted(r["qtype"] for r in picked["qa"]) == ["color", "count"]
    assert picked["ground"][0]["question"] == "g2"


def test_pick_requests_among_mapped_objects_and_falls_back_when_none_is(scene):
    from sim.config import AgentConfig
    from llm3d_bench.demo import pick_requests
    from sim.navmesh import build_navgrid

    grid = build_navgrid(scene.mesh(), AgentConfig())
    cfg = DemoConfig(groundings=3, navigations=2)
    seen = {scene.instances[0].id, scene.instances[-1].id}
    picked = pick_requests(scene, grid, cfg, seen=seen)
    assert picked["ground"] and picked["navigate"]  # every object has requests when seen is given
    for rec in picked["ground"] + picked["navigate"]:
        assert set(rec["object_ids"]) <= seen, rec
    assert picked["qa"] == pick_requests(scene, grid, cfg)["qa"]  # questions do not depend on the map
    nothing = pick_requests(scene, grid, cfg, seen=set())  # nothing mapped: the requests are still asked
    assert len(nothing["ground"]) == 3 and len(nothing["navigate"]) == 2


@pytest.mark.slow
def test_demo_quick_writes_a_report(tmp_path):
    from llm3d_cli.main import main

    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    summary = json.loads((out / "demo.json").read_text())["summary"]
    assert summary["split"] == "test" and summary["fused"] > 0 and summary["objects"] > 0
    assert len(json.loads((out / "demo.json").read_text())["qa"]) == 3
    page = (out / "report.html").read_text()
    for needle in ('src="map.png"', "Questions", "Grounding", "Navigation", "frame_0.png"):
        assert needle in page
    assert (out / "map.png").stat().st_size > 10_000
    assert (out / "map" / "map.json").is_file()
