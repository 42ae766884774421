"""The ROS 2 runtime environment of llm3d, set in one place.

The CLI, the nodes, `llm3d bringup`'s child processes and the tests all take their ROS
environment from `ros_environment()`. It never overrides what the user has set; it fills in:

- AMENT_PREFIX_PATH: the venv prefix, where the pip-installed ROS 2 wheels and our interface
  packages live (ament_index fails without it; a sourced ROS install already sets it).
- RMW_IMPLEMENTATION: rmw_fastrtps_cpp, the one RMW the wheels ship.
- FASTDDS_DEFAULT_PROFILES_FILE: a profile with a 32 MB shared-memory segment, because the
  stock 512 KB segment drops most 640x480 images between processes.
- ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST when `localhost=True` (tests, self-checks, and the
  CLI unless the user chose a range): nothing is discovered beyond this machine.

This module does not import rclpy, so it can run before rclpy is first imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "config"
PROFILE_SUBNET = CONFIG_DIR / "fastdds_subnet.xml"
PROFILE_LOCALHOST = CONFIG_DIR / "fastdds_localhost.xml"


def ros_environment(base: Mapping[str, str] | None = None, *, localhost: bool | None = None) -> dict[str, str]:
    """Returns `base` (default: os.environ) completed with llm3d's ROS settings.

    localhost: True forces LOCALHOST discovery; False leaves the range as `base` has it;
    None uses LOCALHOST only when `base` sets no ROS_AUTOMATIC_DISCOVERY_RANGE.
    """
    env = dict(os.environ if base is None else base)
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if sys.prefix not in prefixes:
        prefixes.append(sys.prefix)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(prefixes)
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    # glibc gives each thread that allocates its own arena (up to 8 per core), and the nodes'
    # worker, executor and DDS threads all allocate: freed memory then stays spread over arenas
    # no one reuses. Two arenas keep a long-running node's resident memory flat.
    env.setdefault("MALLOC_ARENA_MAX", "2")

    if localhost is None:
        localhost = "ROS_AUTOMATIC_DISCOVERY_RANGE" not in env
    if localhost:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    local_only = env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").upper() == "LOCALHOST"
    if "FASTDDS_DEFAULT_PROFILES_FILE" not in env or env.get("LLM3D_FASTDDS_PROFILE") == "1":
        # Remember that the profile is ours, so a later call may switch its variant.
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE_LOCALHOST if local_only else PROFILE_SUBNET)
        env["LLM3D_FASTDDS_PROFILE"] = "1"
    return env


def apply_ros_environment(*, localhost: bool | None = None) -> None:
    """Sets `ros_environment()` in this process; call it before rclpy is initialised."""
    os.environ.update(ros_environment(localhost=localhost))
