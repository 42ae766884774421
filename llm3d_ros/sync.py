"""Stream plumbing of the nodes: pairing two streams by stamp, and a newest-wins queue.

The code lives in `llm3d_core.sync` (no rclpy), shared with the bag reader so recorded frames
are paired exactly as live ones; this module keeps the nodes' import path.
"""

from llm3d_core.sync import LatestQueue, StampPairer

__all__ = ["LatestQueue", "StampPairer"]
