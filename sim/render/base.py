"""The renderer contract shared by the EGL rasteriser and the Open3D raycaster.

Outputs for a pinhole camera K (OpenCV: x right, y down, z forward) at pose T_world_camera:
- rgb: (H, W, 3) uint8, Lambertian shading of the face colours under one fixed directional light
  (two-sided, so walls seen from behind are lit too) plus an ambient share;
- depth: (H, W) float32 metres along the optical axis (z, not ray length); 0 where nothing was hit
  within [near, far];
- instance: (H, W) int32, -1 where nothing was hit, 0 on structure (floor, walls), >= 1 objects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from llm3d_core.geometry import check_intrinsics, check_rigid
from sim.config import RenderConfig
from sim.scenes.scene import SceneMesh

NO_HIT = -1  # instance value where a ray leaves the scene


@dataclass
class RenderOutput:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres, 0 = no hit
    instance: np.ndarray  # (H, W) int32, -1 = no hit, 0 = structure


def shade(face_colors: np.ndarray, face_normals: np.ndarray, config: RenderConfig) -> np.ndarray:
    """(F, 3) float32 shaded colours in [0, 1]: albedo * (ambient + (1 - ambient) * |n . l|)."""
    light = np.asarray(config.light_dir, np.float64)
    light /= np.linalg.norm(light)
    lambert = np.abs(face_normals @ light)  # (F,) two-sided
    k = config.ambient + (1.0 - config.ambient) * lambert
    return (face_colors.astype(np.float32) / 255.0 * k[:, None]).astype(np.float32)


class Renderer(ABC):
    """Renders one scene mesh; `set_mesh` swaps the scene, `render` draws one view."""

    name = "base"

    def __init__(self, config: RenderConfig) -> None:
        self.config = config
        self.K = config.intrinsics()

    @abstractmethod
    def set_mesh(self, mesh: SceneMesh) -> None: ...

    @abstractmethod
    def _render(self, K: np.ndarray, T_world_camera: np.ndarray) -> RenderOutput: ...

    def render(self, T_world_camera: np.ndarray, K: np.ndarray | None = None) -> RenderOutput:
        """One view at `T_world_camera` (4x4 camera -> world) with intrinsics K (default: the config's)."""
        K = self.K if K is None else check_intrinsics(K)
        return self._render(K, check_rigid(T_world_camera, "T_world_camera"))

    def close(self) -> None:
        """Frees GPU/driver resources (no-op for CPU renderers)."""

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
