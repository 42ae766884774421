"""Datasets and readers of posed RGB-D frames."""
