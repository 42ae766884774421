"""The layers `llm3d snapshot` draws, from synthetic arrays (no ROS)."""

import math

import numpy as np
import pytest
from PIL import Image

from llm3d_core.mapping.layers import LabelledBox, MapLayers
from llm3d_core.mapping.occupancy import OccupancyGrid
from llm3d_core.mapping.render import layers_png, occupancy_rgba


def synthetic_layers() -> MapLayers:
    """A 4 x 3 m room: walls in the grid, a floor cloud, two objects, one grounded, a path, goal and robot."""
    values = np.full((70, 90), -1, np.int8)  # rows = y, cols = x, 5 cm cells from (-0.25, -0.25)
    values[5:65, 5:85] = 0
    values[5:7, 5:85] = values[63:65, 5:85] = 100
    rng = np.random.default_rng(0)
    xy = rng.uniform([0.0, 0.0], [4.0, 3.0], (5000, 2))
    points = np.c_[xy, rng.uniform(0.0, 1.0, 5000)]
    table = LabelledBox(np.array([2.5, 1.8, 0.0]), np.array([3.5, 2.4, 0.75]), "table #4", (0.1, 0.6, 0.9))
    chair = LabelledBox(np.array([1.0, 1.0, 0.0]), np.array([1.5, 1.5, 0.9]), "chair #3", (0.9, 0.1, 0.1))
    path = np.c_[np.linspace(0.2, 2.0, 20), np.full(20, 0.5), np.zeros(20)]
    return MapLayers(OccupancyGrid(values, np.array([-0.25, -0.25]), 0.05), points, rng.uniform(0, 1, (5000, 3)),
                     [chair, table], [LabelledBox(table.box_min, table.box_max, "the table: table #4 (0.93)")], path,
                     goal=(2.9, 1.4, math.pi / 2), robot=(2.0, 0.5, 0.3))


def test_layers_png_draws_every_layer(tmp_path):
    layers = synthetic_layers()
    assert layers.summary() == ("map 90x70 @ 0.05 m, cloud 5000 points, 2 objects, grounding 1, trajectory 20 poses, "
                                "goal (2.90, 1.40, 90 deg), robot (2.00, 0.50, 17 deg)")
    path = layers_png(tmp_path / "layers.png", layers, title="synthetic")
    assert path.is_file() and not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left over
    with Image.open(path) as img:
        w, h = img.size
        pixels = np.asarray(img.convert("RGB")).reshape(-1, 3).astype(int)
    assert 700 <= w <= 1400 and 400 <= h <= 1200, (w, h)
    assert 10_000 < path.stat().st_size < 600_000
    red = (pixels[:, 0] > 200) & (pixels[:, 1] < 60) & (pixels[:, 2] < 60)
    assert red.sum() > 100  # the grounding box is drawn in red


def test_layers_png_with_one_layer_and_with_none(tmp_path):
    only_goal = MapLayers(goal=(1.0, 2.0, 0.0))
    assert only_goal.summary().startswith("map none, cloud 0 points, 0 objects")
    assert layers_png(tmp_path / "goal.png", only_goal).is_file()
    with pytest.raises(ValueError, match="nothing to draw"):
        layers_png(tmp_path / "none.png", MapLayers())
    with pytest.raises(ValueError, match="colours"):
        MapLayers(points=np.zeros((3, 3)), colors=np.zeros((2, 3)))


def test_occupancy_colours_and_moved_boxes():
    rgba = occupancy_rgba(np.array([[-1, 0, 100, 50]], np.int8))
    assert rgba[0, 0, 3] == 0  # unknown: transparent
    assert rgba[0, 1, 0] > rgba[0, 3, 0] > rgba[0, 2, 0]  # free lighter than 50 lighter than occupied
    T = np.eye(4)
    T[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90 degrees about z
    T[:3, 3] = [10.0, 0.0, 0.0]
    moved = LabelledBox(np.array([0.0, 0.0, 0.0]), np.array([2.0, 1.0, 1.0]), "b").transformed(T)
    assert np.allclose(moved.box_min, [9.0, 0.0, 0.0]) and np.allclose(moved.box_max, [10.0, 2.0, 1.0])
    assert moved.label == "b"
