"""sim: the posed RGB-D simulator and the benchmark harness. Imports without rclpy."""
