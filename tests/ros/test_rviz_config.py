"""launch/llm3d.rviz shows what the nodes publish: its topics and durabilities against the node configs.

The topics come from `llm3d_ros.snapshot.layer_topics()`, which reads them from the nodes' configs
under launch/llm3d.yaml; tests/ros/test_snapshot.py checks that table against the live publishers.
"""

import re
from pathlib import Path

import yaml

from llm3d_core.config import load_config
from llm3d_ros.nodes.sim_bridge_config import SimBridgeConfig
from llm3d_ros.snapshot import layer_topics

REPO = Path(__file__).resolve().parents[2]
RVIZ = REPO / "launch" / "llm3d.rviz"

# The message type each RViz display class subscribes to.
DISPLAY_TYPES = {
    "rviz_default_plugins/Map": "nav_msgs/msg/OccupancyGrid",
    "rviz_default_plugins/PointCloud2": "sensor_msgs/msg/PointCloud2",
    "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray",
    "rviz_default_plugins/Path": "nav_msgs/msg/Path",
    "rviz_default_plugins/Pose": "geometry_msgs/msg/PoseStamped",
}


def displays(items: list[dict]) -> list[dict]:
    """Every display, those inside rviz_common/Group displays included."""
    out = []
    for item in items:
        out += displays(item.get("Displays", [])) if item["Class"] == "rviz_common/Group" else [item]
    return out


def root(topic: str) -> str:
    """A topic as it resolves at the root namespace (RViz, like the nodes, resolves relative names)."""
    return topic if topic.startswith("/") else "/" + topic


def test_rviz_displays_what_the_nodes_publish():
    config = yaml.safe_load(RVIZ.read_text())
    manager = config["Visualization Manager"]
    table = layer_topics()  # launch/llm3d.yaml
    published = {root(row.topic): row for row in table.layers}
    assert manager["Global Options"]["Fixed Frame"] == table.fixed_frame == "map"
    assert manager["Views"]["Current"]["Class"] == "rviz_default_plugins/TopDownOrtho"
    shown = displays(manager["Displays"])
    assert {"rviz_default_plugins/TF", "rviz_default_plugins/Grid"} <= {d["Class"] for d in shown}
    with_topics = [d for d in shown if "Topic" in d]
    for display in with_topics:
        topic = root(display["Topic"]["Value"])
        assert topic in published, f"{display['Name']}: no node publishes {topic} ({sorted(published)})"
        row = published[topic]
        assert DISPLAY_TYPES[display["Class"]] == row.type_name, display["Name"]
        qos = display["Topic"]
        # A transient-local subscription never matches a volatile publisher; a volatile one misses latched messages.
        assert qos["Durability Policy"] == ("Transient Local" if row.transient_local else "Volatile"), display["Name"]
        assert qos["Reliability Policy"] == "Reliable", display["Name"]
        assert not any(key.endswith("Topic") and key != "Topic" for key in display), display["Name"]  # e.g. map_updates
        if display["Class"] == "rviz_default_plugins/PointCloud2":
            assert display["Color Transformer"] == "RGB8"
    assert sorted(root(d["Topic"]["Value"]) for d in with_topics) == sorted(published)  # every layer is shown


def test_rviz_goal_tool_sends_where_the_robot_listens_and_the_file_is_installed():
    config = yaml.safe_load(RVIZ.read_text())
    tools = {tool["Class"]: tool for tool in config["Visualization Manager"]["Tools"]}
    goal_tool = tools["rviz_default_plugins/SetGoal"]["Topic"]
    goal_row = next(row for row in layer_topics().layers if row.layer == "goal")
    # RViz's "2D Goal Pose" publishes where the reasoner does and the sim bridge (or Nav2) follows goals.
    assert goal_tool["Value"] == goal_row.topic == load_config(SimBridgeConfig, "llm3d_sim_bridge").goal_topic
    assert goal_tool["Durability Policy"] == "Volatile"
    setup = (REPO / "setup.py").read_text()
    assert re.search(r'glob\.glob\("launch/\*\.rviz"\)', setup), "setup.py must install launch/*.rviz"
