"""Mapper benchmark: frames/s of incremental feature fusion on real frames, beside references.

References on the same frames and machine:
- Open3D VoxelBlockGrid TSDF alone (geometry only, no features): what fusing depth costs;
- published figure of the public numpy TSDF demo used with these 7-Scenes frames
  (tsdf-fusion-python: ~0.4 frames/s on a CPU, ~30 frames/s on a GPU, 2 cm voxels).
Per-frame cost is also compared between the first and last fifth of the run, which shows
whether work grows with the map (it should not: fusion is proportional to the frame).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path


from llm3d_core.data.frames import SevenScenesFrames
from llm3d_core.geometry import validate_frame
from llm3d_core.mapping.mapper import FeatureFusionMapper, MapperConfig
from llm3d_core.mapping.tsdf import TsdfVolume
from llm3d_core.progress import progress

PUBLISHED = [("tsdf-fusion-python (numpy, CPU), published", 0.4), ("tsdf-fusion-python (CUDA GPU), published", 30.0)]


def _median_ms(values: list[float]) -> float:
    return 1e3 * statistics.median(values) if values else float("nan")


def run_mapper_bench(frames_dir: Path, config: MapperConfig, limit: int = 0) -> dict:
    frames = SevenScenesFrames(frames_dir)
    indices = list(range(len(frames)))[: limit or None]
    loaded = [frames[i] for i in progress(indices, desc="loading frames")]  # disk reads stay out of the timing

    mapper = FeatureFusionMapper(config)
    mapper.integrate(loaded[0])  # warm-up: first call allocates and JIT-initialises
    mapper.reset()
    stats = [mapper.integrate(f) for f in progress(loaded, desc="llm3d mapper")]
    total = sum(s.seconds for s in stats)
    fifth = max(1, len(stats) // 5)

    tsdf = TsdfVolume(config.tsdf)
    prepared = [validate_frame(f) for f in loaded]
    t0 = time.perf_counter()
    for (depth_m, K, T), f in zip(prepared, loaded):
        depth_m = depth_m.copy()
        depth_m[depth_m > config.depth_max] = 0
        tsdf.integrate(depth_m, f.rgb, K, T)
    tsdf_seconds = time.perf_counter() - t0

    feature_bytes = mapper.voxels.features.element_size() * mapper.voxels.feature_dim * len(mapper.voxels)
    return {
        "frames": len(loaded),
        "device": str(mapper.device),
        "encoder": config.encoder.name,
        "feature_dim": mapper.encoder.out_dim,
        "voxel_size_m": config.voxels.voxel_size,
        "tsdf_voxel_size_m": config.tsdf.voxel_size,
        "llm3d_fps": len(stats) / total,
        "encode_ms": _median_ms([s.encode_seconds for s in stats]),
        "fuse_ms": _median_ms([s.fuse_seconds for s in stats]),
        "tsdf_ms": _median_ms([s.tsdf_seconds for s in stats]),
        "frame_ms_first_fifth": _median_ms([s.seconds for s in stats[:fifth]]),
        "frame_ms_last_fifth": _median_ms([s.seconds for s in stats[-fifth:]]),
        "map_voxels": len(mapper.voxels),
        "feature_mb": feature_bytes / 1e6,
        "open3d_tsdf_only_fps": len(loaded) / tsdf_seconds,
    }


def mapper_rows(result: dict) -> list[list[object]]:
    rows = [
        ["llm3d mapper (features + TSDF)", result["llm3d_fps"],
         f"encode {result['encode_ms']:.0f} ms, fuse {result['fuse_ms']:.0f} ms, TSDF {result['tsdf_ms']:.0f} ms; "
         f"{result['map_voxels']} voxels x {result['feature_dim']}-d ({result['feature_mb']:.0f} MB)"],
        ["Open3D VoxelBlockGrid TSDF only (same frames)", result["open3d_tsdf_only_fps"], "geometry, no features"],
    ]
    rows += [[name, fps, "reference"] for name, fps in PUBLISHED]
    rows.append(["per-frame time, first vs last fifth of the run",
                 f"{result['frame_ms_first_fifth']:.0f} ms vs {result['frame_ms_last_fifth']:.0f} ms",
                 "constant = work does not grow with the map"])
    return rows


def bench_config(base: MapperConfig) -> MapperConfig:
    """The bench measures fusion alone: objects are recomputed only at the end, not during the run."""
    return dataclasses.replace(base, objects_every=0)


__all__ = ["run_mapper_bench", "mapper_rows", "bench_config"]
