"""llm3d_core: the ROS-free library of llm3d (geometry, mapping, model, data, training, evaluation).

Nothing in this package imports rclpy; heavy dependencies (torch, Open3D) are imported by the
modules that need them, not here.
"""

from llm3d_core.version import __version__

__all__ = ["__version__"]
