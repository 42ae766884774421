"""Read-outs of the core map as numpy arrays, for nodes to publish.

Kept out of the node files so those hold no torch code (style rule 2): the node asks for arrays,
llm3d_ros.conversions turns arrays into messages.
"""

from __future__ import annotations

import numpy as np

from llm3d_core.mapping.mapper import FeatureFusionMapper


def map_cloud(mapper: FeatureFusionMapper, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """The map's coloured points (N, 3) float32 and colours (N, 3) in [0, 1], at most max_points:
    the TSDF surface when the mapper fuses one (denser, sharper colours), else the voxel centres.

    Beyond max_points the points are subsampled at an even stride (deterministic, so a static
    map gives the same cloud every time and RViz does not flicker).
    """
    points, colors = mapper.colored_points()
    if len(points) > max_points:
        stride = -(-len(points) // max_points)  # ceil division keeps the count <= max_points
        points, colors = points[::stride], colors[::stride]
    return points.astype(np.float32), colors.astype(np.float32)
