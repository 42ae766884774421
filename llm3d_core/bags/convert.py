"""Folders of posed RGB-D frames (7-Scenes or TUM RGB-D layout) into bags, as a camera driver +
localisation would have recorded them: per frame /tf map -> optical frame, CameraInfo, colour, depth."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from llm3d_core.bags.config import BagConfig
from llm3d_core.bags.writer import BagWriter
from llm3d_core.data.frames import SevenScenesFrames, open_frame_folder


@dataclass
class ConvertStats:
    frames: int
    messages: dict[str, int]
    path: str
    bytes: int

    def to_dict(self) -> dict:
        import dataclasses

        return dataclasses.asdict(self)


def bag_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def frames_to_bag(folder: str | Path, out: str | Path, config: BagConfig | None = None, every: int = 1,
                  limit: int = 0, wrap: Callable[[Iterable, str, int], Iterable] = lambda items, desc, total: items
                  ) -> ConvertStats:
    """Writes every `every`-th frame of `folder` (at most `limit`, 0: all) into a new bag at `out`.

    Stamps keep the frames' relative timing, starting at config.start_time_s. JPEG colour files
    (7-Scenes) are passed through byte for byte when config.color_format is 'jpeg'.
    """
    if every < 1 or limit < 0:
        raise ValueError(f"need every >= 1 and limit >= 0, got every={every}, limit={limit}")
    config = config or BagConfig()
    frames = open_frame_folder(folder)
    indices = list(range(0, len(frames), every))[: limit or None]
    start_ns = int(round(config.start_time_s * 1e9))
    first_t: float | None = None
    with BagWriter(out, config) as writer:
        for i in wrap(indices, "frames -> bag", len(indices)):
            frame = frames[i]
            first_t = frame.timestamp if first_t is None else first_t
            stamp_ns = start_ns + int(round((frame.timestamp - first_t) * 1e9))
            payload = None
            if config.color_format == "jpeg" and isinstance(frames, SevenScenesFrames):
                jpg = frames.pose_files[i].parent / f"{frames.stem(i)}.color.jpg"
                payload = jpg.read_bytes() if jpg.is_file() else None
            writer.write_frame(frame, stamp_ns, color_payload=payload)
        counts = dict(writer.counts)
    return ConvertStats(len(indices), counts, str(out), bag_size(Path(out)))
