"""Benchmarks: each returns plain rows that the CLI prints as a Markdown table and writes as JSON."""
