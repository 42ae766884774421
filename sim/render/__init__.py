"""Renderers of RGB, metric depth and instance ids: EGL rasteriser, Open3D raycaster fallback."""

from __future__ import annotations

import logging

from sim.config import RenderConfig
from sim.render.base import NO_HIT, RenderOutput, Renderer

log = logging.getLogger("llm3d.sim.render")


def make_renderer(config: RenderConfig | None = None, backend: str | None = None) -> Renderer:
    """The renderer for `backend` (default: config.backend); "auto" is EGL, else the raycaster."""
    config = config or RenderConfig()
    backend = backend or config.backend
    if backend not in ("auto", "egl", "raycast", "habitat"):
        raise ValueError(f"render backend must be auto, egl, raycast or habitat, got {backend!r}")
    if backend == "habitat":
        from sim.habitat_backend import HabitatRenderer

        return HabitatRenderer(config)
    if backend in ("auto", "egl"):
        from sim.render.egl import EglRenderer

        try:
            return EglRenderer(config)
        except RuntimeError as err:
            if backend == "egl":
                raise
            log.warning("%s; falling back to the Open3D raycaster", err)
    from sim.render.raycast import RaycastRenderer

    return RaycastRenderer(config)


__all__ = ["NO_HIT", "RenderConfig", "RenderOutput", "Renderer", "make_renderer"]
