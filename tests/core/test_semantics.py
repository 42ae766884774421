"""Keyframe store and object crops (mapping.semantics)."""

import numpy as np
import pytest

from llm3d_core.mapping.semantics import CropConfig, Keyframe, KeyframeStore, object_crops, visible_box

K = np.array([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]])


def test_keyframe_store_thins_evenly():
    store = KeyframeStore(CropConfig(keyframe_every=2, max_keyframes=4, image_scale=0.5))
    rgb, depth = np.zeros((96, 128, 3), np.uint8), np.ones((96, 128), np.float32)
    for t in range(20):
        store.offer(rgb, depth, K, np.eye(4), float(t))
    stamps = [k.timestamp for k in store.keyframes]
    assert len(stamps) <= 4
    assert stamps[0] == 0.0 and np.all(np.diff(stamps) == stamps[1] - stamps[0])  # evenly spaced from the start
    assert store.keyframes[0].rgb.shape == (48, 64, 3)
    assert np.allclose(store.keyframes[0].K[:2], K[:2] * 0.5)


def test_visible_box_and_occlusion():
    depth = np.full((96, 128), 2.0, np.float32)
    kf = Keyframe(np.zeros((96, 128, 3), np.uint8), depth, K.copy(), np.eye(4), 0.0)
    pts = np.array([[0.0, 0.0, 2.0], [0.2, 0.1, 2.0]])  # on the surface the keyframe saw
    count, box = visible_box(pts, kf, 0.1)
    assert count == 2 and box.tolist() == [64, 48, 75, 54]
    hidden = pts + [0, 0, 1.0]  # behind that surface: occluded
    assert visible_box(hidden, kf, 0.1) == (0, None)
    behind_camera = pts * [1, 1, -1]
    assert visible_box(behind_camera, kf, 0.1) == (0, None)


def test_object_crops_pick_the_best_views():
    frames = []
    for shift in (0.0, 0.5, 5.0):  # the last view does not see the object at all
        T = np.eye(4)
        T[0, 3] = shift
        rgb = np.full((96, 128, 3), int(shift * 40), np.uint8)
        frames.append(Keyframe(rgb, np.full((96, 128), 2.0, np.float32), K.copy(), T, shift))
    xs = np.linspace(-0.3, 0.3, 20)
    pts = np.stack(np.meshgrid(xs, xs, [2.0], indexing="ij"), -1).reshape(-1, 3)
    crops = object_crops(pts, frames, CropConfig(views_per_object=3, crop_margin=0.0, min_crop_pixels=5))
    assert len(crops) == 2
    assert crops[0].shape[:2] == (31, 31)  # 0.6 m at 2 m with fx = 100: 30 px (+1, inclusive)
    assert crops[0][0, 0, 0] == 0  # ... and is the first


def test_crop_config_validation():
    with pytest.raises(ValueError, match="image_scale"):
        CropConfig(image_scale=0)
    with pytest.raises(ValueError, match="max_keyframes"):
        CropConfig(max_keyframes=1)
