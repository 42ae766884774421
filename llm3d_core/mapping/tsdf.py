"""Geometry of the map: a TSDF in Open3D's VoxelBlockGrid, fused from the same frames and poses.

Gives surfaces (point cloud, mesh), rendered depth at any pose (used to check the map against
held-out frames) and a 2D occupancy grid for navigation.

Depth is rendered by ray casting the marching-cubes surface with Embree (RaycastingScene), not with
VoxelBlockGrid.ray_cast, which is unsafe in Open3D 0.20 (CPU): when a view needs more range-map
fragments than its buffer holds (a grid's first 640x480 cast always does), it still walks fragment
slots it never wrote, and stale heap data there becomes pixel bounds for range-map writes (SIGSEGV,
issue #21). At image sizes not divisible by 8 it also reads past its range map (wrong rows, hangs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open3d as o3d
import open3d.core as o3c


@dataclass
class TsdfConfig:
    voxel_size: float = 0.02  # metres
    block_resolution: int = 8  # voxels per block edge
    # Initial hash capacity in blocks, allocated up front; Open3D grows it (rehash) when a frame needs
    # more. The 250-frame 7-Scenes kitchen at 2 cm uses 2,583 blocks: 10,000 leave room for a flat.
    block_count: int = 10_000
    trunc_voxel_multiplier: float = 4.0  # truncation distance in voxels
    depth_max: float = 5.0  # metres; farther depth is ignored
    depth_min: float = 0.1  # metres; nearer depth is ignored

    def __post_init__(self) -> None:
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {self.voxel_size}")
        if self.block_resolution not in (4, 8, 16):
            raise ValueError(f"block_resolution must be 4, 8 or 16, got {self.block_resolution}")
        if self.block_count < 1:
            raise ValueError(f"block_count must be >= 1, got {self.block_count}")
        if not self.trunc_voxel_multiplier > 0:
            raise ValueError(f"trunc_voxel_multiplier must be > 0, got {self.trunc_voxel_multiplier}")
        if not 0 <= self.depth_min < self.depth_max:
            raise ValueError(f"need 0 <= depth_min < depth_max, got {self.depth_min}, {self.depth_max}")


def _intrinsic(K: np.ndarray) -> o3c.Tensor:
    return o3c.Tensor(np.asarray(K, dtype=np.float64))


def _extrinsic(T_world_camera: np.ndarray) -> o3c.Tensor:
    return o3c.Tensor(np.linalg.inv(T_world_camera).astype(np.float64))  # world -> camera


BYTES_PER_VOXEL = 4 + 2 + 3 * 2  # tsdf float32, weight uint16, colour 3 x uint16


class TsdfVolume:
    """Truncated signed distance volume with colour, integrated frame by frame."""

    def __init__(self, config: TsdfConfig) -> None:
        self.config = config
        self._version = 0  # bumped on every change of the volume
        self._cast_cache: tuple[tuple[int, float], o3d.t.geometry.RaycastingScene | None] | None = None
        self.reset()

    def reset(self) -> None:
        c = self.config
        # Open3D allocates (and touches) block_count blocks up front: 50,000 blocks of 8^3 voxels are
        # 512 MB with float32 weight and colour, 307 MB with uint16 ones (Open3D's own TSDF layout;
        # colours come back as float in [0, 1] either way, quantised to 1/65535).
        self.grid = o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight", "color"),
            attr_dtypes=(o3c.float32, o3c.uint16, o3c.uint16),
            attr_channels=((1), (1), (3)),
            voxel_size=c.voxel_size,
            block_resolution=c.block_resolution,
            block_count=c.block_count,
            device=o3c.Device("CPU:0"),
        )
        self.frames = 0
        self._changed()

    def integrate(self, depth_m: np.ndarray, rgb: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray) -> None:
        """Fuses one validated frame: depth (H, W) float32 metres (0 = invalid), rgb (H, W, 3) uint8."""
        c = self.config
        depth = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(depth_m, dtype=np.float32)))
        color = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(rgb, dtype=np.float32) / 255.0))
        intrinsic, extrinsic = _intrinsic(K), _extrinsic(T_world_camera)
        blocks = self.grid.compute_unique_block_coordinates(depth, intrinsic, extrinsic, 1.0, c.depth_max,
                                                            c.trunc_voxel_multiplier)
        self.grid.integrate(blocks, depth, color, intrinsic, intrinsic, extrinsic, 1.0, c.depth_max,
                            c.trunc_voxel_multiplier)
        self.frames += 1
        self._changed()

    def _changed(self) -> None:
        # A version, not just a cleared cache: a scene built while another thread integrates is stored
        # under the version it started from, so it is never taken for the current surface.
        self._version += 1
        self._cast_cache = None  # frees the stale scene (BVH and mesh) now, not at the next render

    @property
    def empty(self) -> bool:
        """No block allocated yet (nothing fused, or only frames without valid depth)."""
        return self.grid.hashmap().size() == 0

    def point_cloud(self, weight_threshold: float = 3.0) -> o3d.t.geometry.PointCloud:
        if self.empty:  # Open3D raises on a grid without blocks instead of returning an empty cloud
            cloud = o3d.t.geometry.PointCloud(o3c.Tensor(np.zeros((0, 3), np.float32)))
            cloud.point.colors = o3c.Tensor(np.zeros((0, 3), np.float32))
            return cloud
        return self.grid.extract_point_cloud(weight_threshold=weight_threshold)

    def surface_points(self, spacing: float, weight_threshold: float = 0.5) -> np.ndarray:
        """Surface points (P, 3) float64 seen at least once (Open3D keeps weight > threshold), thinned
        to about one per `spacing` cube."""
        positions = self.point_cloud(weight_threshold).point.positions.numpy().astype(np.float64)
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(positions))
        return np.asarray(cloud.voxel_down_sample(spacing).points)

    def mesh(self, weight_threshold: float = 3.0) -> o3d.t.geometry.TriangleMesh:
        return self.grid.extract_triangle_mesh(weight_threshold=weight_threshold)

    def render_depth(self, K: np.ndarray, T_world_camera: np.ndarray, width: int, height: int,
                     weight_threshold: float = 1.0) -> np.ndarray:
        """Depth (H, W) float32 metres of the fused surface seen from a pose (0 where nothing).

        The surface is where voxels fused at least `weight_threshold` times change sign. Pixel centres
        are at integer (u, v), as in OpenCV and the simulator's renderers.
        """
        c = self.config
        scene = self._scene(weight_threshold)
        if scene is None:
            return np.zeros((height, width), np.float32)
        # create_rays_pinhole aims at pixel centres (u + 0.5, v + 0.5); shifting the principal point by
        # half a pixel aims at (u, v). Its directions have camera z = 1, so t is the camera depth.
        K_rays = np.asarray(K, dtype=np.float64).copy()
        K_rays[:2, 2] += 0.5
        rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
            _intrinsic(K_rays), _extrinsic(T_world_camera), int(width), int(height)).numpy()  # (H, W, 6)
        # Start at depth_min, as a TSDF ray march does: a surface nearer than that does not hide the rest.
        rays[..., :3] += c.depth_min * rays[..., 3:]
        hit = scene.cast_rays(o3c.Tensor(rays))
        depth = hit["t_hit"].numpy() + c.depth_min  # (H, W), inf where no hit
        # Marching-cubes triangles face the positive (free) side. A ray that meets one from behind came
        # through a hole in the surface; a TSDF ray march renders nothing there, and neither does this.
        facing = np.einsum("hwc,hwc->hw", hit["primitive_normals"].numpy(), rays[..., 3:]) < 0
        return np.where(facing & (depth <= c.depth_max), depth, 0.0).astype(np.float32)

    def _scene(self, weight_threshold: float) -> o3d.t.geometry.RaycastingScene | None:
        """Embree scene of the surface, kept while the volume is unchanged (None: no surface yet)."""
        key = (self._version, float(weight_threshold))
        cached = self._cast_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        # Marching cubes keeps cubes whose 8 voxels all have weight > threshold; the float32 just below
        # the threshold makes that weight >= weight_threshold (weights are counts of fused frames).
        below = float(np.nextafter(np.float32(weight_threshold), np.float32(-np.inf)))
        scene = None
        # Open3D raises on a grid without blocks instead of returning an empty mesh.
        mesh = None if self.empty else self.grid.extract_triangle_mesh(weight_threshold=below)
        if mesh is not None and mesh.triangle.indices.shape[0]:
            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(mesh.vertex.positions, mesh.triangle.indices.to(o3c.uint32))
        self._cast_cache = (key, scene)
        return scene

    def occupancy(self, floor_z: float, robot_height: float, cell: float, weight_threshold: float = 3.0):
        """Top-down occupancy (see mapping.occupancy) from the surface points."""
        from llm3d_core.mapping.occupancy import occupancy_from_points

        points = self.point_cloud(weight_threshold).point.positions.numpy()
        return occupancy_from_points(points, floor_z, robot_height, cell)

    def save(self, path: Path) -> None:
        self.grid.save(str(path))

    def load(self, path: Path) -> None:
        """Replaces the volume with a saved one; raises FileNotFoundError or ValueError."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} not found")
        try:
            self.grid = o3d.t.geometry.VoxelBlockGrid.load(str(path))
        except Exception as err:  # Open3D raises RuntimeError for any unreadable file
            raise ValueError(f"{path} is not a readable TSDF volume: {err}") from err
        self._changed()
