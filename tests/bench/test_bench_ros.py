"""`llm3d bench ros --quick`: the benchmark runs end to end across processes; its output has the
promised structure and sane values. Speed is not asserted (CI machines differ and are shared)."""

import json

import numpy as np
import pytest

from llm3d_cli.main import main as llm3d_main
from tests.core.test_reasoner import TRAINED_ANSWER, build_sim_map, save_tiny_llm, train_tiny_checkpoint
from tests.ros.test_mapper_node import SMALL_MAPPER

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_subsampled_frame_keeps_the_geometry(seven_scenes):
    from llm3d_core.data.frames import SevenScenesFrames
    from llm3d_bench.ros_pipeline import subsampled

    frame = SevenScenesFrames(seven_scenes)[0]
    half = subsampled(frame, 2)
    assert half.rgb.shape == (240, 320, 3) and half.depth.shape == (240, 320) and half.depth.dtype == np.uint16
    # Pixel (u, v) of the half image is pixel (2u, 2v) of the full one: both project to the same ray.
    u, v = 100, 70
    ray_full = np.linalg.inv(frame.K) @ [2 * u, 2 * v, 1.0]
    ray_half = np.linalg.inv(half.K) @ [u, v, 1.0]
    assert np.allclose(ray_full, ray_half)
    assert half.depth[v, u] == frame.depth[2 * v, 2 * u]


def test_bench_ros_quick(seven_scenes, tmp_path, capsys):
    from llm3d_bench.ros_pipeline import ros_rows

    config = tmp_path / "small.yaml"
    config.write_text(SMALL_MAPPER.format(map_path=tmp_path / "unused"))  # the bench sets its own map_path
    # The tiny model of the reasoner tests: it reads 16-d map features, as SMALL_MAPPER's mapper writes.
    ckpt = train_tiny_checkpoint(tmp_path / "ckpt", save_tiny_llm(tmp_path / "llm"), build_sim_map(tmp_path / "sim_map"))
    out = tmp_path / "out"
    rc = llm3d_main(["bench", "ros", "--quick", "--frames", str(seven_scenes), "--config", str(config),
                     "--device", "cpu", "--ckpt", str(ckpt), "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    result = json.loads((out / "ros.json").read_text())

    dds = result["dds"]
    assert dds["width"] == 640 and dds["height"] == 480 and dds["lost"] < dds["sent"]
    assert 0 < dds["round_trip_ms"]["p50"] <= dds["round_trip_ms"]["p95"] < 1000

    (stream,) = result["streams"]  # --quick: 320x240 only
    assert (stream["width"], stream["height"]) == (320, 240)
    assert 2.5 <= stream["seconds"] < 10 and stream["published"] > 30  # ~30 Hz for ~3 s
    assert stream["drained"]
    assert 1 <= stream["fused"] <= stream["published"] and stream["received"]["color"] <= stream["published"]
    assert 0.0 <= stream["dropped_share"] < 1.0
    # Every published frame is accounted for: fused, or dropped somewhere, or rejected.
    accounted = stream["fused"] + stream["dropped"]["stale"] + sum(stream["errors"].values())
    assert accounted <= stream["published"]
    assert stream["max_queue"] <= stream["queue_size"] == 1  # dropping, never queueing
    latency = stream["latency_ms"]
    assert latency["samples"] >= 1 and 0 < latency["p50"] <= latency["p95"] <= latency["max"] < 60_000

    for key, calls in (("trigger", 20), ("save_map", 2), ("reset_map", 3)):
        trigger = result[key]
        assert trigger["round_trip_ms"]["samples"] == trigger["calls"] == calls
        assert 0 < trigger["round_trip_ms"]["p50"] <= trigger["round_trip_ms"]["p95"] < 60_000
    assert result["save_map"]["succeeded"] == 2 and "saved" in result["save_map"]["message"]
    assert result["reset_map"]["succeeded"] == 3
    # After the reset there is nothing to save: the answer comes without work on the map.
    assert result["trigger"]["succeeded"] == 0 and "nothing to save" in result["trigger"]["message"]
    ask = result["ask"]
    assert ask["measured"] and ask["failed"] == 0 and ask["answer"] == TRAINED_ANSWER
    assert ask["round_trip_ms"]["samples"] == 3 and 0 < ask["round_trip_ms"]["p50"] < 60_000
    assert 0 < result["mapper_memory"]["peak_gb"] < 24

    table = printed.out
    for row in ("DDS image round trip 640x480", "mapper 320x240: dropped", "mapper 320x240: camera-to-map latency",
                "/llm3d_mapper/reset_map", "/llm3d_mapper/save_map (Trigger), empty map", "service ask (reasoner, "):
        assert row in table, table
    # Without a checkpoint the table says that ask was not measured, and why.
    rows = ros_rows({**result, "ask": {"measured": False, "note": "no checkpoint"}}, 1.5)
    assert rows[-1] == ["service ask (reasoner)", "not measured", "–", "–", "no checkpoint"]
