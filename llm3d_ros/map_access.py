"""Read-outs of the core map as numpy arrays, for nodes to publish.

Kept out of the node files so those hold no torch code (style rule 2): the node asks for arrays,
conversions.py turns arrays into messages.
"""

from __future__ import annotations

import numpy as np

from llm3d_core.mapping.mapper import FeatureFusionMapper


def map_cloud(mapper: FeatureFusionMapper, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Voxel centres (N, 3) float32 and colours (N, 3) in [0, 1] of the map, at most max_points.

    Beyond max_points the voxels are subsampled at an even stride (deterministic, so a static
    map gives the same cloud every time and RViz does not flicker).
    """
    if len(mapper.voxels) == 0:  # Open3D refuses empty key tensors; an empty map is an empty cloud
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
    slots = mapper.voxels.active_slots()
    if len(slots) > max_points:
        stride = -(-len(slots) // max_points)  # ceil division keeps the count <= max_points
        slots = slots[::stride]
    points = mapper.voxels.centers(slots).cpu().numpy().astype(np.float32)  # (N, 3)
    colors = mapper.voxels.colors[slots].float().cpu().numpy()  # (N, 3)
    return points, colors
