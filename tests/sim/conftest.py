"""Shared fixtures of the simulator tests: one generated scene and small renderers per module."""

import pytest

from sim.config import RenderConfig, SimConfig
from sim.scenes import generate_scene

SMALL = RenderConfig(width=160, height=120, fx=131.25, fy=131.25)


@pytest.fixture(scope="session")
def scene():
    return generate_scene(3)


@pytest.fixture(scope="session")
def small_config() -> SimConfig:
    return SimConfig(render=SMALL)
