"""`llm3d bench` runs and prints its tables (tiny sizes; speed itself is not asserted)."""

import json
import subprocess

import pytest

from llm3d_bench.render import run_render_bench


@pytest.mark.slow
def test_bench_render_and_mapper(python_exe, tmp_path, seven_scenes):
    out = subprocess.run([python_exe, "-m", "llm3d_cli.main", "bench", "render", "--frames-count", "5", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| egl |" in out.stdout and "| raycast |" in out.stdout
    result = json.loads((tmp_path / "render.json").read_text())
    assert {r["backend"] for r in result["rows"]} == {"egl", "raycast"}
    assert all(r["fps"] > 0 for r in result["rows"])

    out = subprocess.run([python_exe, "-m", "llm3d_cli.main", "bench", "mapper", "--frames", str(seven_scenes), "--limit", "6",
                          "--voxel", "0.05", "--device", "cpu", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Open3D TSDF only (reference)" in out.stdout and "published" in out.stdout
    result = json.loads((tmp_path / "mapper.json").read_text())
    methods = {(r["source"], r["voxel_m"], r["method"].split(" (")[0]) for r in result["rows"]}
    assert len(methods) == 2 * 3  # real + sim at 5 cm: TSDF / fusion / full
    assert all(r["frames"] == 6 and r["fps"] > 0 and r["voxels"] > 0 for r in result["rows"])
    assert 0.1 < result["streamed_map_peak_gb"] < 20 and "streaming the real sequence" in out.stdout


@pytest.mark.slow
def test_bench_reasoner_times_answers_on_a_mapped_scene(python_exe, tmp_path):
    out = subprocess.run([python_exe, "-m", "llm3d_cli.main", "bench", "reasoner", "--questions", "2", "--device", "cpu",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "QA, answers <= 16 tokens" in out.stdout
    result = json.loads((tmp_path / "reasoner.json").read_text())
    assert result["qa_answers"] == 2 and result["qa_p50_s"] > 0 and result["ground_answers"] >= 1


def test_render_bench_runs():
    result = run_render_bench(seed=1, width=64, height=48, frames=3)
    assert [r["backend"] for r in result["rows"]] == ["egl", "raycast"]
    assert all(r["fps"] > 0 for r in result["rows"])
