"""llm3d_ros: rclpy nodes and message conversions, thin adapters around `llm3d_core` and `sim`.

Importing this package does not import rclpy; node modules do.
"""
