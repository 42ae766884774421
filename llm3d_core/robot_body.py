"""The robot's body as navigation sees it: one config piece for llm3d_mapper's occupancy grid, the
reasoner's goals and the simulated robot (sim.config.AgentConfig.body()).

Flat fields (inherited by GoalConfig), so parameter names stay `robot_radius`, ... The body must be
the same wherever it is stated: a goal chosen for a thinner robot lies where the real one cannot
stand (tests/ros/test_shipped_yaml_defaults.py checks the shipped parameter file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class RobotBodyConfig:
    """Fields:
        robot_radius: metres; obstacles are inflated by this much, so a goal leaves room for the robot.
        robot_height: metres above the floor; geometry between clearance and this height blocks the robot.
        clearance: metres above the floor that count as floor (rugs, thresholds are driven over).
    """

    robot_radius: float = 0.18
    robot_height: float = 1.2
    clearance: float = 0.1

    def __post_init__(self) -> None:
        for name in ("robot_radius", "robot_height", "clearance"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.robot_height <= self.clearance:
            raise ValueError(f"robot_height ({self.robot_height}) must exceed clearance ({self.clearance})")
