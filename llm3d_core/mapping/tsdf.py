"""Geometry of the map: a TSDF in Open3D's VoxelBlockGrid, fused from the same frames and poses.

Gives surfaces (point cloud, mesh), rendered depth at any pose (used to check the map against
held-out frames) and a 2D occupancy grid for navigation.
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

    def point_cloud(self, weight_threshold: float = 3.0) -> o3d.t.geometry.PointCloud:
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
        """Depth (H, W) float32 metres of the fused surface seen from a pose (0 where nothing)."""
        c = self.config
        intrinsic, extrinsic = _intrinsic(K), _extrinsic(T_world_camera)
        # key_tensor() is the whole buffer; only the active slots hold blocks.
        hashmap = self.grid.hashmap()
        blocks = hashmap.key_tensor()[hashmap.active_buf_indices().to(o3c.int64)]
        def cast() -> np.ndarray:
            result = self.grid.ray_cast(block_coords=blocks, intrinsic=intrinsic, extrinsic=extrinsic, width=width,
                                        height=height, render_attributes=["depth"], depth_scale=1.0,
                                        depth_min=c.depth_min, depth_max=c.depth_max, weight_threshold=weight_threshold)
            return result["depth"].numpy().reshape(height, width).astype(np.float32)

        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
            depth = cast()
            if not depth.any():
                # Open3D sizes its range-map buffer on demand: a call that needs more fragments than
                # any earlier one returns nothing while it grows the buffer. The retry gets the image.
                depth = cast()
        return depth

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
