"""CPU fallback renderer on Open3D's RaycastingScene (no GL needed).

One ray per pixel centre with direction R (x_n, y_n, 1), x_n = (u - cx) / fx, y_n = (v - cy) / fy:
with that un-normalised direction the hit parameter t equals the camera-frame depth z. The hit
triangle's id gives the colour (same shading as the rasteriser) and the instance id.
"""

from __future__ import annotations

import numpy as np

from sim.config import RenderConfig
from sim.render.base import NO_HIT, RenderOutput, Renderer, shade
from sim.scenes.scene import SceneMesh


class RaycastRenderer(Renderer):
    name = "raycast"

    def __init__(self, config: RenderConfig) -> None:
        super().__init__(config)
        self._scene = None
        self._dirs_cache: tuple[bytes, np.ndarray] | None = None

    def set_mesh(self, mesh: SceneMesh) -> None:
        import open3d as o3d

        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(mesh.vertices.astype(np.float32)), o3d.core.Tensor(mesh.faces.astype(np.uint32)))
        self._scene = scene
        shaded = shade(mesh.face_colors, mesh.face_normals(), self.config)  # (F, 3) in [0, 1]
        # Extra last row answers "no hit" (Open3D's invalid primitive id is remapped to it).
        self._colors = np.concatenate([np.round(shaded * 255).astype(np.uint8), np.zeros((1, 3), np.uint8)])
        self._ids = np.concatenate([mesh.face_instance.astype(np.int32), [NO_HIT]]).astype(np.int32)

    def _camera_dirs(self, K: np.ndarray) -> np.ndarray:
        """(H, W, 3) camera-frame ray directions with z = 1, cached per K."""
        key = K.tobytes()
        if self._dirs_cache is None or self._dirs_cache[0] != key:
            h, w = self.config.height, self.config.width
            v, u = np.mgrid[0:h, 0:w].astype(np.float64)  # (H, W) each
            dirs = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
            self._dirs_cache = (key, dirs)
        return self._dirs_cache[1]

    def _render(self, K: np.ndarray, T_world_camera: np.ndarray) -> RenderOutput:
        if self._scene is None:
            raise RuntimeError("RaycastRenderer.render called before set_mesh")
        import open3d as o3d

        c = self.config
        dirs = self._camera_dirs(K) @ T_world_camera[:3, :3].T  # (H, W, 3) world directions, camera z-component 1
        origin = np.broadcast_to(T_world_camera[:3, 3], dirs.shape)
        rays = np.concatenate([origin, dirs], axis=-1).astype(np.float32)  # (H, W, 6)
        hit = self._scene.cast_rays(o3d.core.Tensor(rays))
        t = hit["t_hit"].numpy()  # (H, W) float32, inf on miss
        prim = hit["primitive_ids"].numpy().astype(np.int64)  # (H, W), INVALID_ID (2^32 - 1) on miss
        valid = np.isfinite(t) & (t >= c.near) & (t <= c.far)
        prim = np.where(valid, prim, len(self._ids) - 1)
        depth = np.where(valid, t, 0.0).astype(np.float32)
        return RenderOutput(self._colors[prim], depth, self._ids[prim])
