"""The llm3d ROS 2 nodes: thin adapters around llm3d_core (one module per node, `main()` each)."""
