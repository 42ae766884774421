"""Readers of posed RGB-D frame folders.

7-Scenes layout (e.g. ../shared/data/7scenes-redkitchen):
    camera-intrinsics.txt                  3x3 K
    frames/frame-NNNNNN.color.jpg|png      RGB
    frames/frame-NNNNNN.depth.png          uint16 depth, millimetres (0 and 65535 invalid)
    frames/frame-NNNNNN.pose.txt           4x4 camera-to-world, OpenCV camera convention
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from llm3d_core.geometry import FrameError, RGBDFrame, check_rigid


class FrameFolderError(FileNotFoundError):
    """A frame folder is missing files; the message names them."""


class SevenScenesFrames:
    """Posed RGB-D frames of a 7-Scenes style folder, in frame order."""

    def __init__(self, root: str | Path, fps: float = 30.0) -> None:
        self.root = Path(root)
        k_file = self.root / "camera-intrinsics.txt"
        if not k_file.is_file():
            raise FrameFolderError(f"{k_file} not found (expected a 7-Scenes style folder)")
        self.K = np.loadtxt(k_file).reshape(3, 3)
        frames_dir = self.root / "frames" if (self.root / "frames").is_dir() else self.root
        self.pose_files = sorted(frames_dir.glob("frame-*.pose.txt"))
        if not self.pose_files:
            raise FrameFolderError(f"no frame-*.pose.txt files in {frames_dir}")
        self.fps = fps

    def __len__(self) -> int:
        return len(self.pose_files)

    def stem(self, i: int) -> str:
        return self.pose_files[i].name[: -len(".pose.txt")]

    def frame_index(self, i: int) -> int:
        return int(self.stem(i).split("-")[1])

    def __getitem__(self, i: int) -> RGBDFrame:
        stem = self.pose_files[i].parent / self.stem(i)
        color = next((p for p in (Path(f"{stem}.color.jpg"), Path(f"{stem}.color.png")) if p.is_file()), None)
        depth_file = Path(f"{stem}.depth.png")
        if color is None or not depth_file.is_file():
            raise FrameFolderError(f"frame {stem.name}: colour or depth image missing")
        rgb = np.asarray(Image.open(color).convert("RGB"))
        depth = np.asarray(Image.open(depth_file))
        if depth.dtype != np.uint16:
            depth = depth.astype(np.uint16)
        try:
            pose = check_rigid(np.loadtxt(self.pose_files[i]), f"pose of {stem.name}")
        except (ValueError, FrameError) as err:
            raise FrameError(f"{self.pose_files[i]}: {err}") from err
        return RGBDFrame(rgb=rgb, depth=depth, K=self.K.copy(), T_world_camera=pose,
                         timestamp=self.frame_index(i) / self.fps, depth_scale=1000.0)

    def __iter__(self) -> Iterator[RGBDFrame]:
        for i in range(len(self)):
            yield self[i]
