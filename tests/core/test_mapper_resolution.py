"""#21: a camera that changes resolution mid-run, and frames beyond the configured size bound."""

import numpy as np
import pytest
from PIL import Image

from llm3d_core.geometry import FrameError, RGBDFrame
from llm3d_core.mapping.mapper import FeatureFusionMapper
from llm3d_core.mapping.semantics import CropConfig
from tests.core.test_mapper import small_config


def _room_frame(width: int, height: int, t: float, seed: int = 0) -> RGBDFrame:
    """A textured wall 2 m ahead at any resolution; intrinsics scale with the image (same field of view)."""
    rgb = np.asarray(Image.fromarray(np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8))
                     .resize((width, height), Image.NEAREST))
    depth = np.full((height, width), 2.0, np.float32)
    depth[: height // 3, : width // 3] = 1.5  # a box in front of the wall: crops see two depths
    f = 0.8 * width
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    return RGBDFrame(rgb=rgb, depth=depth, K=K, T_world_camera=np.eye(4), timestamp=t)


def test_frames_of_changing_resolution_save_load_and_refresh(tmp_path):
    mapper = FeatureFusionMapper(small_config(crops=CropConfig(keyframe_every=1)))
    assert mapper.use_crops  # keyframes are kept: what broke saves before
    for i, (w, h) in enumerate([(128, 96), (64, 48), (200, 200), (128, 96), (96, 128)]):
        mapper.integrate(_room_frame(w, h, float(i)))
    sizes = {kf.rgb.shape for kf in mapper.keyframes.keyframes}
    assert len(mapper.keyframes.keyframes) >= 3 and len(sizes) == 1  # one stored size, the first keyframe's
    # Projection stays exact at the stored size: the wall's centre lands at the keyframe's principal point.
    kf = mapper.keyframes.keyframes[2]  # taken from the 200x200 frame
    assert np.isclose(kf.K[0, 2], kf.rgb.shape[1] / 2) and np.isclose(kf.K[1, 2], kf.rgb.shape[0] / 2)
    mapper.update_objects()
    path = mapper.save(tmp_path / "map")  # raised "all input arrays must have the same shape" before
    mapper.integrate(_room_frame(320, 240, 9.0))
    mapper.save(path)  # and every later save too
    loaded = FeatureFusionMapper.load(path, device="cpu")
    assert loaded.frames == 6 and loaded.keyframes.size == mapper.keyframes.size
    loaded.integrate(_room_frame(50, 40, 10.0))  # a resumed map keeps its keyframe size
    loaded.save(path)


def test_frames_beyond_the_size_bound_are_refused_by_name():
    mapper = FeatureFusionMapper(small_config(max_image_pixels=200 * 200))
    mapper.integrate(_room_frame(200, 200, 0.0))
    voxels, frames = len(mapper.voxels), mapper.frames
    with pytest.raises(FrameError, match=r"201x200 .* larger than mapper.max_image_pixels"):
        mapper.integrate(_room_frame(201, 200, 1.0))
    assert (len(mapper.voxels), mapper.frames) == (voxels, frames)  # nothing changed
