"""Writes simulator frames in the 7-Scenes folder layout that `llm3d_core.data.frames.SevenScenesFrames` reads.

    camera-intrinsics.txt              3x3 K
    frames/frame-NNNNNN.color.png      RGB
    frames/frame-NNNNNN.depth.png      uint16 millimetres, 0 = invalid
    frames/frame-NNNNNN.pose.txt       4x4 T_world_camera (OpenCV camera)
    frames/frame-NNNNNN.instance.png   uint16 instance ids: 0 structure, >= 1 objects, 65535 no hit
    scene.json, scene.glb              annotations and mesh (sim.scenes.scene)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from llm3d_core.geometry import RGBDFrame

INSTANCE_NO_HIT_PNG = 65535


class FrameWriter:
    def __init__(self, root: str | Path, K: np.ndarray) -> None:
        self.root = Path(root)
        self.frames = self.root / "frames"
        self.frames.mkdir(parents=True, exist_ok=True)
        np.savetxt(self.root / "camera-intrinsics.txt", np.asarray(K), fmt="%.6f")
        self.count = 0

    def write(self, frame: RGBDFrame) -> Path:
        stem = self.frames / f"frame-{self.count:06d}"
        Image.fromarray(frame.rgb).save(f"{stem}.color.png")
        mm = np.round(np.asarray(frame.depth, np.float64) * 1000.0)  # metres -> mm
        depth = np.where((mm > 0) & (mm < 65535), mm, 0).astype(np.uint16)  # 0 marks invalid, as in 7-Scenes
        Image.fromarray(depth).save(f"{stem}.depth.png")
        if frame.instance_ids is not None:
            ids = np.where(frame.instance_ids < 0, INSTANCE_NO_HIT_PNG, frame.instance_ids).astype(np.uint16)
            Image.fromarray(ids).save(f"{stem}.instance.png")
        np.savetxt(f"{stem}.pose.txt", frame.T_world_camera, fmt="%.8f")
        self.count += 1
        return stem


def read_instance_png(path: str | Path) -> np.ndarray:
    """(H, W) int32 instance ids with -1 where nothing was hit."""
    ids = np.asarray(Image.open(path)).astype(np.int32)
    ids[ids == INSTANCE_NO_HIT_PNG] = -1
    return ids
