"""Incremental feature-fusion mapping: voxel features, TSDF geometry, objects, queries."""
