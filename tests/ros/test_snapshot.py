"""`llm3d snapshot`: an empty graph, and what RViz would show of `llm3d bringup --sim` (its usage errors:
tests/sim/test_cli_errors.py)."""

import os
import re
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from llm3d_cli.main import main as llm3d_main

pytestmark = pytest.mark.ros


def snapshot_stack(map_path: Path) -> str:
    """test_sim_bridge's small stack (the sim at 160x120) with a mapper that fuses a TSDF, whose surface
    points make objects out of the first view."""
    from tests.ros.test_sim_bridge import SMALL_STACK

    params = yaml.safe_load(SMALL_STACK.format(map_path=map_path))
    mapper = params["llm3d_mapper"]["ros__parameters"]
    mapper["occupancy_period_s"] = 0.5
    mapper["mapper"].update(sample_stride=4, use_tsdf=True, objects_every=3, objects={"min_points": 10})
    return yaml.safe_dump(params)


def test_nothing_arrived_is_exit_1_and_no_picture(capsys, tmp_path):
    out = tmp_path / "none.png"
    namespace = f"nobody_{os.getpid()}"  # no stack runs here
    assert llm3d_main(["snapshot", "--seconds", "1", "--namespace", namespace, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"nothing arrived within 1 s on /{namespace}/map, /{namespace}/map_cloud" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def counts(summary: str) -> dict[str, int]:
    """'map 101x81 @ 0.05 m, cloud 27730 points, 6 objects, ...' -> {'map_cells': .., 'cloud': .., 'objects': ..}."""
    grid = re.search(r"map (\d+)x(\d+) @", summary)
    return {"map_cells": int(grid[1]) * int(grid[2]) if grid else 0,
            "cloud": int(re.search(r"cloud (\d+) points", summary)[1]),
            "objects": int(re.search(r"(\d+) objects", summary)[1])}


def publisher_durabilities(topics: list[tuple[str, str]], timeout_s: float = 30.0) -> dict[tuple[str, str], str]:
    """(topic, node) -> durability of that node's publisher of the topic, as the graph shows it
    (waits until discovery names every node; a missing one is left out)."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("snapshot_test_graph", context=context)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            found = {(topic, info.node_name): info.qos_profile.durability.name for topic, _ in topics
                     for info in node.get_publishers_info_by_topic(topic)}
            if set(topics) <= set(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.2)
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_snapshot_of_bringup_sim_shows_map_cloud_and_objects(capsys, tmp_path):
    from llm3d_ros.snapshot import layer_topics
    from tests.ros.test_mapper_node import Bringup

    params = tmp_path / "params.yaml"
    params.write_text(snapshot_stack(tmp_path / "map"))
    png = tmp_path / "rviz.png"
    bringup = Bringup("--sim", "--params-file", str(params), "--device", "cpu")
    try:
        deadline = time.monotonic() + 150.0
        seen = {"map_cells": 0, "cloud": 0, "objects": 0}
        while not all(seen.values()) and time.monotonic() < deadline:
            assert bringup.proc.poll() is None, bringup.output
            rc = llm3d_main(["snapshot", "--seconds", "4", "--out", str(png), "--params-file", str(params)])
            out = capsys.readouterr().out
            if rc == 0:
                seen = counts(out)
        assert all(seen.values()), f"{seen}\n{bringup.output[-3000:]}"
        assert "wrote" in out and "robot (" in out  # the robot's pose from TF
        with Image.open(png) as img:
            assert img.size[0] > 600 and img.size[1] > 400
        # The QoS the rviz file and the snapshot assume (layer_topics) is what the live publishers offer.
        rows = layer_topics(params).layers
        found = publisher_durabilities([("/" + row.topic, row.node) for row in rows])
        for row in rows:
            assert found.get(("/" + row.topic, row.node)) == ("TRANSIENT_LOCAL" if row.transient_local
                                                               else "VOLATILE"), (row, found)
    finally:
        rc = bringup.stop()
    assert rc == 0, bringup.output[-3000:]
