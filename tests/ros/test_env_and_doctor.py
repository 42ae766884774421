import subprocess
import sys

import pytest

from llm3d_ros.env import PROFILE_LOCALHOST, PROFILE_SUBNET, ros_environment


def test_environment_fills_in_and_respects_user_settings():
    env = ros_environment({}, localhost=None)
    assert sys.prefix in env["AMENT_PREFIX_PATH"].split(":")
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(PROFILE_LOCALHOST)
    # A robot's own settings win: its range, its prefix path (ours appended), its DDS profile.
    robot = ros_environment({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "AMENT_PREFIX_PATH": "/opt/ros/kilted",
                             "FASTDDS_DEFAULT_PROFILES_FILE": "/etc/robot.xml"})
    assert robot["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET"
    assert robot["AMENT_PREFIX_PATH"].split(":")[0] == "/opt/ros/kilted"
    assert robot["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/robot.xml"
    subnet = ros_environment({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"})
    assert subnet["FASTDDS_DEFAULT_PROFILES_FILE"] == str(PROFILE_SUBNET)
    assert PROFILE_LOCALHOST.is_file() and PROFILE_SUBNET.is_file()


@pytest.mark.ros
def test_doctor_passes(python_exe):
    result = subprocess.run([python_exe, "-m", "llm3d_cli.main", "doctor"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("PASS") for line in lines) == 5
    assert not any(line.startswith("FAIL") for line in lines)
    assert "rmw_fastrtps_cpp" in result.stdout
