"""The benchmark and demo tests share the simulator tests' generated scene."""

from tests.sim.conftest import scene  # noqa: F401  (a fixture: pytest finds it by name here)
