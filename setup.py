"""ament_python / pip build of the `llm3d` package.

The version lives in package.xml only; this file reads it from there.
"""

import glob
import re
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
PACKAGE = "llm3d"


def package_version() -> str:
    text = (ROOT / "package.xml").read_text()
    match = re.search(r"<version>\s*([^<\s]+)\s*</version>", text)
    if match is None:
        raise RuntimeError("package.xml has no <version> element")
    return match.group(1)


# The console scripts a ROS install finds under lib/llm3d (`ros2 run llm3d <name>`).
NODE_SCRIPTS: list[str] = [
    "llm3d_mapper = llm3d_ros.nodes.mapper_node:main",
    "llm3d_sim_bridge = llm3d_ros.nodes.sim_bridge_node:main",
    "llm3d_reasoner = llm3d_ros.nodes.reasoner_node:main",
]

setup(
    name=PACKAGE,
    version=package_version(),
    packages=find_packages(include=["llm3d_core*", "llm3d_ros*", "llm3d_bench*", "llm3d_cli*", "sim*"]),
    package_data={"llm3d_ros": ["config/*.xml"], "sim": ["assets/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob.glob("launch/*.py") + glob.glob("launch/*.yaml")
                                    + glob.glob("launch/*.rviz")),
        (f"share/{PACKAGE}/launch/cameras", glob.glob("launch/cameras/*.yaml")),  # camera profiles (--camera)
    ],
    zip_safe=False,
    python_requires=">=3.10",
    entry_points={"console_scripts": ["llm3d = llm3d_cli.main:main", *NODE_SCRIPTS]},
)
