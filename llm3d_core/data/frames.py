"""Readers of posed RGB-D frame folders: 7-Scenes and TUM RGB-D layouts.

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


# TUM RGB-D (Sturm et al. 2012) publishes these intrinsics as the "ROS default" for its sequences
# whose images were not rectified per camera; a camera-intrinsics.txt in the folder overrides them.
TUM_DEFAULT_K = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
TUM_DEPTH_SCALE = 5000.0  # TUM depth PNGs: 5000 units per metre


def _read_tum_list(path: Path, columns: int) -> list[list[str]]:
    """Rows of a TUM text file ('#' comments, whitespace separated) with at least `columns` fields."""
    if not path.is_file():
        raise FrameFolderError(f"{path} not found (expected a TUM RGB-D folder: rgb.txt, depth.txt, groundtruth.txt)")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < columns:
            raise FrameFolderError(f"{path}:{n}: expected {columns} fields, got {len(fields)}: {line!r}")
        rows.append(fields)
    return rows


class TumFrames:
    """Posed RGB-D frames of a TUM RGB-D folder (rgb.txt, depth.txt, groundtruth.txt, rgb/, depth/).

    Colour and depth are associated by nearest timestamp within `max_dt` s (TUM's cameras are not
    synchronised); the pose is groundtruth interpolated at the colour timestamp (linear
    translation, slerp rotation), and frames outside the groundtruth's time span are left out.
    Groundtruth gives the colour camera's optical centre in the world, so it is T_world_camera
    in the OpenCV convention as is.
    """

    def __init__(self, root: str | Path, max_dt: float = 0.02) -> None:
        from llm3d_core.messages import compose_matrix, quaternion_slerp

        self.root = Path(root)
        rgb = [(float(t), f) for t, f, *_ in _read_tum_list(self.root / "rgb.txt", 2)]
        depth = [(float(t), f) for t, f, *_ in _read_tum_list(self.root / "depth.txt", 2)]
        gt = np.array([[float(v) for v in row[:8]] for row in _read_tum_list(self.root / "groundtruth.txt", 8)])
        if not rgb or not depth or len(gt) < 2:
            raise FrameFolderError(f"{self.root}: rgb.txt, depth.txt need entries and groundtruth.txt two poses or more")
        gt = gt[np.argsort(gt[:, 0])]
        k_file = self.root / "camera-intrinsics.txt"
        self.K = np.loadtxt(k_file).reshape(3, 3) if k_file.is_file() else TUM_DEFAULT_K.copy()
        depth_t = np.array([t for t, _ in depth])
        self.items: list[tuple[float, str, str, np.ndarray]] = []
        for t, color_file in rgb:
            j = int(np.argmin(np.abs(depth_t - t)))
            if abs(depth_t[j] - t) > max_dt or not gt[0, 0] <= t <= gt[-1, 0]:
                continue
            i = int(np.clip(np.searchsorted(gt[:, 0], t), 1, len(gt) - 1))
            a = (t - gt[i - 1, 0]) / max(gt[i, 0] - gt[i - 1, 0], 1e-12)
            q = quaternion_slerp(gt[i - 1, 4:8], gt[i, 4:8], a)
            pose = compose_matrix((1 - a) * gt[i - 1, 1:4] + a * gt[i, 1:4], q)
            self.items.append((t, color_file, depth[j][1], pose))
        if not self.items:
            raise FrameFolderError(f"{self.root}: no colour frame has depth within {max_dt} s and a groundtruth pose")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> RGBDFrame:
        t, color_file, depth_file, pose = self.items[i]
        color, depth_path = self.root / color_file, self.root / depth_file
        if not color.is_file() or not depth_path.is_file():
            raise FrameFolderError(f"frame at {t:.6f}: {color if not color.is_file() else depth_path} missing")
        rgb = np.asarray(Image.open(color).convert("RGB"))
        depth = np.asarray(Image.open(depth_path)).astype(np.uint16)
        return RGBDFrame(rgb=rgb, depth=depth, K=self.K.copy(), T_world_camera=pose, timestamp=t,
                         depth_scale=TUM_DEPTH_SCALE)

    def __iter__(self) -> Iterator[RGBDFrame]:
        for i in range(len(self)):
            yield self[i]


def open_frame_folder(root: str | Path) -> SevenScenesFrames | TumFrames:
    """The reader for a folder: TUM RGB-D when it has rgb.txt, else 7-Scenes."""
    root = Path(root)
    if not root.is_dir():
        raise FrameFolderError(f"frame folder not found: {root}")
    return TumFrames(root) if (root / "rgb.txt").is_file() else SevenScenesFrames(root)
