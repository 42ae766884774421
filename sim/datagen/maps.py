"""Feature-fusion maps of generated scenes: explore in the simulator, fuse with the core mapper.

3D-LLM (Hong et al. 2023, section 3.2) obtains its 3D features by rendering many posed views of a
scene and fusing per-view 2D features onto 3D points. Here the views come from the frontier
explorer (sim.explore) and the fusion from `llm3d_core.mapping.mapper.FeatureFusionMapper`, the
same mapper the robot runs live, so training maps and deployment maps are built alike. Simulator
frames carry instance ids, so the map's objects are the scene's instances.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sim.config import RenderConfig, SimConfig
from sim.scenes.scene import Scene

if TYPE_CHECKING:  # the mapper pulls in torch and the encoders; import it only when maps are built
    from llm3d_core.mapping.mapper import FeatureFusionMapper, MapperConfig
    from sim.simulator import Simulator


@dataclass
class SceneMapStats:
    """What `build_scene_map` did for one scene."""

    scene_id: str
    frames: int  # frames the explorer produced
    fused: int  # frames fused into the map (every `frames_every`-th)
    objects: int  # map objects after the final update
    instance_ids: list[int]  # instance ids of the map objects (sorted)
    coverage: float  # share of the reachable navigable area the explorer saw
    seconds: float  # wall time for exploring, fusing and saving
    fuse_seconds: float  # of which in FeatureFusionMapper.integrate (encoder, lifting, TSDF)
    finish_seconds: float  # of which in the final update_objects() and save()
    path: str  # map folder

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def scaled_render(render: RenderConfig, width: int, height: int) -> RenderConfig:
    """`render` at another image size with the same field of view (focal lengths and principal point scaled)."""
    sx, sy = width / render.width, height / render.height
    return dataclasses.replace(render, width=width, height=height, fx=render.fx * sx, fy=render.fy * sy,
                               cx=None if render.cx is None else render.cx * sx,
                               cy=None if render.cy is None else render.cy * sy)


def map_sim_config(base: SimConfig | None = None, width: int = 320, height: int = 240,
                   max_steps: int | None = None) -> SimConfig:
    """The simulator config for map building: `base` (default launch/llm3d.yaml) at a reduced resolution."""
    from sim.config import load_sim_config

    cfg = base or load_sim_config()
    explore = cfg.explore if max_steps is None else dataclasses.replace(cfg.explore, max_steps=max_steps)
    return dataclasses.replace(cfg, render=scaled_render(cfg.render, width, height), explore=explore)


def map_mapper_config(base: MapperConfig | None = None, device: str | None = None,
                      config_path: str | Path | None = None) -> MapperConfig:
    """The `llm3d_mapper: mapper:` config of launch/llm3d.yaml (or `config_path`), as `llm3d map` reads it,
    with periodic object updates off: objects are computed once, at the end."""
    from llm3d_core.mapping.mapper import load_mapper_config

    base = base or load_mapper_config(config_path)
    return dataclasses.replace(base, objects_every=0, **({"device": device} if device else {}))


def build_scene_map(scene: Scene, out_dir: str | Path, frames_every: int = 3, sim: Simulator | None = None,
                    mapper: FeatureFusionMapper | None = None, sim_config: SimConfig | None = None,
                    mapper_config: MapperConfig | None = None) -> SceneMapStats:
    """Explores `scene`, fuses every `frames_every`-th frame, updates objects once and saves to `out_dir`.

    `sim` and `mapper` may be passed in to reuse them across scenes (a renderer context and the
    encoders are costly to create); the mapper is reset first. Without them they are built from
    `sim_config` (default: `map_sim_config()`, 320x240) and `mapper_config` (default:
    `map_mapper_config()`), and the simulator is closed afterwards.
    """
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from sim.explore import explore
    from sim.simulator import Simulator

    if frames_every < 1:
        raise ValueError(f"frames_every must be >= 1, got {frames_every}")
    t0 = time.perf_counter()
    own_sim = sim is None
    sim = sim or Simulator(sim_config or map_sim_config())
    try:
        mapper = mapper or FeatureFusionMapper(mapper_config or map_mapper_config())
        mapper.reset()
        sim.load(scene)
        fused, fuse_seconds = 0, 0.0

        def on_frame(frame, i: int) -> None:
            nonlocal fused, fuse_seconds
            if i % frames_every == 0:
                fuse_seconds += mapper.integrate(frame).seconds
                fused += 1

        result = explore(sim, sim.config.explore, on_frame=on_frame, keep_frames=False)
        t1 = time.perf_counter()
        objects = mapper.update_objects()
        mapper.save(out_dir)
        finish_seconds = time.perf_counter() - t1
    finally:
        if own_sim:
            sim.close()
    return SceneMapStats(scene.scene_id, result.steps + 1, fused, len(objects),
                         sorted(o.instance_id for o in objects), round(result.coverage, 4),
                         round(time.perf_counter() - t0, 2), round(fuse_seconds, 2), round(finish_seconds, 2),
                         str(out_dir))
