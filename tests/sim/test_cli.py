"""`llm3d sim render|explore` write folders that SevenScenesFrames reads back."""

import json

import numpy as np
import pytest

from llm3d_cli.main import main
from llm3d_core.data.frames import SevenScenesFrames
from sim.io import read_instance_png
from sim.scenes import load_scene


def test_sim_render_writes_seven_scenes_layout(tmp_path, capsys):
    out = tmp_path / "render"
    assert main(["sim", "render", "--seed", "2", "--out", str(out), "--views", "3", "--width", "80", "--height", "60"]) == 0
    frames = SevenScenesFrames(out)
    assert len(frames) == 3
    f = frames[1]
    assert f.rgb.shape == (60, 80, 3) and f.depth.dtype == np.uint16 and (f.depth > 0).mean() > 0.5
    ids = read_instance_png(out / "frames" / "frame-000001.instance.png")
    scene = load_scene(out / "scene.json")
    known = {0, -1} | {i.id for i in scene.instances}
    assert set(np.unique(ids)) <= known
    assert np.array_equal(ids == -1, f.depth == 0)
    assert json.loads((out / "summary.json").read_text())["frames"] == 3


def test_sim_explore_writes_trajectory(tmp_path):
    out = tmp_path / "explore"
    assert main(["sim", "explore", "--seed", "11", "--out", str(out), "--width", "80", "--height", "60",
                 "--max-steps", "30", "--backend", "raycast"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == len(SevenScenesFrames(out)) == summary["steps"] + 1 and summary["renderer"] == "raycast"


@pytest.mark.slow
def test_ask_about_one_real_frame_before_any_map(seven_scenes, capsys):
    """UniVLG's single-view path: one posed RGB-D frame lifted to 3D goes through the same model."""
    assert main(["ask", "the chair", "--task", "ground", "--frames", str(seven_scenes), "--index", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frame"] == "camera" and len(result["box_min"]) == 3
    assert all(lo <= hi for lo, hi in zip(result["box_min"], result["box_max"]))
    assert main(["ask", "what is here?", "--frames", str(seven_scenes), "--index", "100000"]) == 2
    assert "outside the" in capsys.readouterr().err
    # The shipped checkpoint's UniVLG mask head grounds the same view from a denser sample of it.
    assert main(["ask", "the chair", "--task", "ground", "--frames", str(seven_scenes), "--index", "5", "--json",
                 "--mask-head"]) == 0
    mask = json.loads(capsys.readouterr().out)["mask_head"]
    assert 0.0 <= mask["score"] <= 1.0 and mask["points"] >= 0
    if mask["box_min"] is not None:
        assert mask["points"] > 0 and all(lo <= hi for lo, hi in zip(mask["box_min"], mask["box_max"]))
    assert main(["ask", "what is here?", "--frames", str(seven_scenes), "--mask-head"]) == 2  # ground only
    assert "--mask-head needs --task ground" in capsys.readouterr().err
