"""Test-wide ROS environment: LOCALHOST discovery and a ROS_DOMAIN_ID unique to this run.

Set here, before any test imports rclpy, through the same module the CLI and nodes use.
"""

import os
import sys
from pathlib import Path

import pytest

from llm3d_ros.env import apply_ros_environment

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
apply_ros_environment(localhost=True)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def python_exe() -> str:
    """The venv's own interpreter (its .pth sets LD_LIBRARY_PATH for the ROS wheels)."""
    return sys.executable


@pytest.fixture
def seven_scenes() -> Path:
    path = SHARED_DATA / "7scenes-redkitchen"
    if not path.is_dir():
        pytest.skip(f"real data not found at {path}")
    return path
