"""Benchmarks, demos and their reports, over llm3d_core, sim and llm3d_ros (habitat-lab keeps its
baselines apart from the simulator the same way). Each benchmark returns plain rows that the CLI
prints as a Markdown table and writes as JSON."""
