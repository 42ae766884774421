"""Render benchmark: frames/s of RGB + depth + instance ids at 640x480, EGL vs the raycaster.

Target from issue 3: >= 60 frames/s with EGL on this CPU. Poses are random navigable agent poses
of one procedural scene; the first frame of each backend (context/BVH warm-up) is not timed.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from sim.config import SimConfig
from sim.render import make_renderer
from sim.scenes.generator import generate_scene
from sim.navmesh import build_navgrid
from sim.agent import base_to_camera, pose_matrix

TARGET_FPS = 60.0


def run_render_bench(seed: int = 0, width: int = 640, height: int = 480, frames: int = 100,
                     backends: tuple[str, ...] = ("egl", "raycast"), config: SimConfig | None = None) -> dict:
    """Returns {"scene": ..., "triangles": int, "rows": [{"backend", "frames", "fps", "ms_median"}]}."""
    cfg = config or SimConfig()
    s = width / cfg.render.width
    render_cfg = dataclasses.replace(cfg.render, width=width, height=height, fx=cfg.render.fx * s,
                                     fy=cfg.render.fy * height / cfg.render.height)
    scene = generate_scene(seed, cfg.scene)
    mesh = scene.mesh()
    grid = build_navgrid(mesh, cfg.agent)
    rng = np.random.default_rng(seed)
    T_base_camera = base_to_camera(cfg.agent.camera_height, cfg.agent.camera_pitch_deg)
    poses = [pose_matrix(*grid.sample_navigable(rng), float(rng.uniform(-math.pi, math.pi))) @ T_base_camera
             for _ in range(frames)]
    rows = []
    for backend in backends:
        try:
            renderer = make_renderer(render_cfg, backend)
        except RuntimeError as err:
            rows.append({"backend": backend, "frames": 0, "fps": float("nan"), "ms_median": float("nan"), "note": str(err)})
            continue
        with renderer:
            renderer.set_mesh(mesh)
            renderer.render(poses[0])  # warm-up
            times = []
            for T in poses:
                t0 = time.perf_counter()
                renderer.render(T)
                times.append(time.perf_counter() - t0)
        rows.append({"backend": backend, "frames": len(times), "fps": len(times) / sum(times),
                     "ms_median": 1e3 * float(np.median(times)), "note": ""})
    return {"scene": scene.scene_id, "triangles": int(len(mesh.faces)), "instances": len(scene.instances),
            "width": width, "height": height, "target_fps": TARGET_FPS, "rows": rows}


def render_rows(result: dict) -> list[list[object]]:
    """Markdown rows: backend, frames/s, median ms, meets the target."""
    return [[r["backend"], r["fps"], r["ms_median"], "yes" if r["fps"] >= result["target_fps"] else "no", r["note"]]
            for r in result["rows"]]
