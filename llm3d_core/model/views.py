"""Saved single views as model inputs: the frame half of UniVLG's 2D-3D co-training (Jain et al., ICML 2025, sec. 3).

A view is one rendered RGB-D frame with instance ids, written by the simulator's view generator
(`llm3d data views`, sim/datagen/views.py) under `DATA/views/<view_id>/`:
    view.npz   rgb (H, W, 3) uint8, depth (H, W) float32 metres, instance (H, W) int32, K (3, 3),
               T_world_camera (4, 4)
    view.json  scene_id, split, visibility, and the encoder and lifting settings of the scene's maps
Training and evaluation turn it into a SceneInput exactly as the reasoner turns the camera's
current view into one (model/single_frame.py): encoded by the maps' 2D encoder, lifted with depth
in camera coordinates, objects from the instance ids. The SceneInput is cached beside the maps'
scene caches, so each view is encoded once.
"""

from __future__ import annotations

import json
from pathlib import Path
import numpy as np

from llm3d_core.encoders import SavedEncoder
from llm3d_core.geometry import RGBDFrame
from llm3d_core.model.scene import SceneInput

VIEWS_DIR_NAME = "views"
VIEW_FORMAT = "llm3d-view"


class ViewError(ValueError):
    """A saved view is missing, torn or of another format; the message names the file."""


def view_dir(data_dir: str | Path, view_id: str) -> Path:
    return Path(data_dir) / VIEWS_DIR_NAME / view_id


def is_view(data_dir: str | Path, scene_id: str) -> bool:
    """True when `scene_id` names a saved view (its view.json exists) rather than a scene map."""
    return (view_dir(data_dir, scene_id) / "view.json").is_file()


def read_view(folder: str | Path) -> tuple[RGBDFrame, dict]:
    """(the view as an RGBDFrame with instance ids, its view.json); ViewError when unreadable."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "view.json").read_text())
        with np.load(folder / "view.npz") as z:
            arrays = {k: z[k] for k in ("rgb", "depth", "instance", "K", "T_world_camera")}
    except (OSError, ValueError, KeyError) as err:  # missing file, bad JSON or zip, missing array
        raise ViewError(f"view {folder} cannot be read: {err}") from err
    if meta.get("format") != VIEW_FORMAT:
        raise ViewError(f"{folder / 'view.json'} is not an {VIEW_FORMAT} file (format={meta.get('format')!r})")
    frame = RGBDFrame(rgb=arrays["rgb"], depth=arrays["depth"].astype(np.float32), K=arrays["K"],
                      T_world_camera=arrays["T_world_camera"], instance_ids=arrays["instance"])
    return frame, meta


class ViewSceneBuilder:
    """SceneInputs of saved views. One image encoder, built from the first view's encoder config,
    serves every view; a view made with another encoder is refused (its features would be of
    another kind than the model trains on)."""

    def __init__(self, num_points: int, seed: int = 0) -> None:
        self.num_points, self.seed = num_points, seed
        self._encoder = SavedEncoder()

    def scene_of_view(self, folder: str | Path) -> SceneInput:
        """The view's SceneInput in its recorded coordinates (camera unless the generator said world)."""
        from llm3d_core.model.single_frame import scene_from_frame

        folder = Path(folder)
        frame, meta = read_view(folder)
        return scene_from_frame(frame, self._encoder.get(meta.get("encoder"), f"view {folder}", ViewError), self.num_points,
                                str(meta.get("coordinates", "camera")), int(meta.get("sample_stride", 8)),
                                float(meta.get("depth_min", 0.1)), float(meta.get("depth_max", 5.0)), self.seed)
