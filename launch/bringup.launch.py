"""Bring up llm3d on a machine with ROS 2 installed.

    ros2 launch llm3d bringup.launch.py                                  # robot: sensors come from the robot
    ros2 launch llm3d bringup.launch.py sim:=true                        # with the built-in simulator
    ros2 launch llm3d bringup.launch.py camera:=realsense_d4xx           # topics of a camera driver (launch/cameras)
    ros2 launch llm3d bringup.launch.py namespace:=robot1 map_dir:=/maps/robot1   # one of several robots
    ros2 launch llm3d bringup.launch.py device:=cuda params_file:=/path/to/llm3d.yaml

`ros2 launch llm3d bringup.launch.py --show-args` lists every argument. The node list, the
arguments and how they map onto parameters come from `llm3d_ros.node_set`, the same definitions
`llm3d bringup` uses.
"""

import os
import tempfile
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from llm3d_ros.node_set import ARGUMENTS, forwarded_parameters, normalize_namespace, parameter_files, select_nodes


def _nodes(context):
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    params_file = Path(LaunchConfiguration("params_file").perform(context))
    sim = values["sim"].strip().lower() in ("1", "true", "yes")
    namespace = normalize_namespace(values["namespace"])
    files = parameter_files(params_file, values["camera"], namespace,
                            Path(tempfile.gettempdir()) / f"llm3d_launch_{os.getpid()}")
    if values["map_dir"]:
        values["map_dir"] = str(Path(values["map_dir"]).expanduser().resolve())
    # As `llm3d bringup`: a crashed node restarts after a delay, the others keep serving.
    respawn_delay = float(values["respawn_delay"])
    return [
        Node(
            package="llm3d",
            executable=spec.executable,
            name=spec.name,
            namespace=namespace or None,
            parameters=[*map(str, files), forwarded_parameters(spec, values)],
            respawn=True,
            respawn_delay=respawn_delay,
            remappings=list(spec.remappings),
            output="screen",
            emulate_tty=True,
        )
        for spec in select_nodes(sim)
    ]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("llm3d"), "launch", "llm3d.yaml")
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    declared.append(DeclareLaunchArgument("params_file", default_value=default_params,
                                          description="YAML parameter file shared by the nodes and the llm3d CLI"))
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])
