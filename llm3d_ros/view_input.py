"""The reasoner's single-view input: the newest colour + depth pair, lifted when a request needs it.

UniVLG (Jain et al. 2025, sec. 3) runs one view through the 3D model as a point set in camera
coordinates. Before the mapper has saved a map, the reasoner node answers about the camera's
current view this way: `LatestView` keeps only the newest paired images and camera info
(callbacks store message references, nothing is decoded at 30 Hz), and `view_scene` decodes,
encodes and lifts the pair once, in the inference worker, when a request arrives.

No rclpy here: messages are duck-typed (llm3d_core.messages), so this is tested without a graph.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from llm3d_core.messages import ConversionError, camera_info_to_K, rgbd_frame_from_messages, stamp_to_ns
from llm3d_core.sync import StampPairer

if TYPE_CHECKING:
    from llm3d_core.encoders.base import ImageEncoder
    from llm3d_core.model.scene import SceneInput
    from llm3d_ros.nodes.reasoner_config import FrameInputConfig

PAIR_BUFFER = 4
VIEW_NOTE = "camera's current view"  # in the message of every reply answered about a view, not a map


def view_note(frame_id: str) -> str:
    """The reply message's note for an answer about the camera view in `frame_id`."""
    return f" about the {VIEW_NOTE} in {frame_id} (no map yet)"


def from_camera_view(message: str) -> bool:
    """Whether a reasoner reply was answered about the camera's current view (no map yet)."""
    return VIEW_NOTE in message


class ViewError(ValueError):
    """No usable view: none received, too old, or its messages do not convert."""


@dataclass
class View:
    stamp_ns: int
    color: Any  # sensor_msgs/Image
    depth: Any
    info: Any  # sensor_msgs/CameraInfo
    received: float  # time.monotonic() when the pair formed

    @property
    def version(self) -> str:
        return f"view-{self.stamp_ns}"


class LatestView:
    """The newest paired colour + depth with the newest valid camera info (thread-safe)."""

    def __init__(self, sync_tolerance_s: float) -> None:
        self._pairer: StampPairer[Any, Any] = StampPairer(int(sync_tolerance_s * 1e9), PAIR_BUFFER)
        self._lock = threading.Lock()
        self._pair: tuple[int, Any, Any, float] | None = None
        self._info: Any = None
        self.received = {"color": 0, "depth": 0, "camera_info": 0, "bad_camera_info": 0}

    def add_color(self, msg: Any) -> None:
        self.received["color"] += 1
        self._keep(self._pairer.add_first(stamp_to_ns(msg.header.stamp), msg))

    def add_depth(self, msg: Any) -> None:
        self.received["depth"] += 1
        self._keep(self._pairer.add_second(stamp_to_ns(msg.header.stamp), msg))

    def add_camera_info(self, msg: Any) -> None:
        self.received["camera_info"] += 1
        try:
            camera_info_to_K(msg)
        except ConversionError:
            self.received["bad_camera_info"] += 1
            return
        with self._lock:
            self._info = msg

    def _keep(self, pair: tuple[int, Any, Any] | None) -> None:
        if pair is not None:
            with self._lock:
                if self._pair is None or pair[0] >= self._pair[0]:
                    self._pair = (*pair, time.monotonic())

    def newest(self, max_age_s: float, topics: str = "the camera topics") -> View:
        """The newest complete view; ViewError when there is none or it is older than max_age_s."""
        with self._lock:
            pair, info = self._pair, self._info
        if pair is None:
            raise ViewError(f"no colour + depth pair received on {topics} yet")
        if info is None:
            raise ViewError(f"no valid CameraInfo received on {topics} yet")
        stamp_ns, color, depth, received = pair
        age = time.monotonic() - received
        if age > max_age_s:
            raise ViewError(f"the newest camera view arrived {age:.1f} s ago (frame_input.max_age_s = {max_age_s})")
        return View(stamp_ns, color, depth, info, received)


def view_scene(view: View, encoder: "ImageEncoder", cfg: "FrameInputConfig", num_points: int,
               seed: int = 0) -> "SceneInput":
    """The view lifted to a SceneInput in camera coordinates (llm3d_core.model.single_frame).

    Raises ViewError for messages that do not convert (encodings, sizes) or a view without valid depth.
    """
    from llm3d_core.geometry import FrameError
    from llm3d_core.model.scene import EmptySceneError
    from llm3d_core.model.single_frame import scene_from_frame

    try:
        frame = rgbd_frame_from_messages(view.color, view.depth, view.info, np.eye(4), cfg.depth_scale)
        return scene_from_frame(frame, encoder, num_points, "camera", cfg.sample_stride, cfg.depth_min,
                                cfg.depth_max, seed, objects=False)
    except (ConversionError, FrameError, EmptySceneError) as err:
        raise ViewError(f"the camera view at {view.stamp_ns * 1e-9:.3f} s could not be used: {err}") from err


def view_frame_id(view: View, cfg: "FrameInputConfig") -> str:
    """The frame a view's boxes are in: camera_frame, else the colour image's header.frame_id."""
    frame_id = cfg.camera_frame or str(view.color.header.frame_id or "")
    if not frame_id:
        raise ViewError("the colour image has no header.frame_id and frame_input.camera_frame is not set")
    return frame_id
