"""What RViz shows of a running stack (launch/llm3d.rviz), collected headless for `llm3d snapshot`.

Joins the graph as one node (in the stack's namespace, with /tf and /tf_static remapped as
`llm3d_ros.node_set` does), subscribes for a window to the topics the rviz file displays, with
the durability of their publishers, and keeps the newest message of each (every marker array,
replayed as RViz does). At the end the messages are converted (`llm3d_ros.conversions`) and
moved into the fixed frame through TF; `llm3d_core.mapping.render.layers_png` draws them.

`layer_topics()` is the one table of those topics, derived from the node configs: tests check
launch/llm3d.rviz and the live publishers against it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llm3d_core.mapping.layers import MapLayers


@dataclass(frozen=True)
class LayerTopic:
    """One display of launch/llm3d.rviz: the topic a node publishes it on."""

    layer: str  # map | cloud | objects | grounding | trajectory | goal
    topic: str  # relative to the stack's namespace, as the node's config names it
    type_name: str  # e.g. nav_msgs/msg/OccupancyGrid
    transient_local: bool  # the publisher's durability: a late subscriber gets its last message
    node: str  # the publishing node


@dataclass(frozen=True)
class SnapshotTopics:
    """The layers' topics, the fixed frame and the robot's base frame of one parameter file."""

    layers: tuple[LayerTopic, ...]
    fixed_frame: str
    base_frame: str


def layer_topics(params_file: str | Path | None = None) -> SnapshotTopics:
    """The topics of the RViz layers under `params_file` (default launch/llm3d.yaml); a topic a
    config turns off ('') is left out."""
    from llm3d_core.config import load_config
    from llm3d_ros.nodes.mapper_config import MapperNodeConfig
    from llm3d_ros.nodes.reasoner_config import ReasonerNodeConfig

    mapper = load_config(MapperNodeConfig, "llm3d_mapper", params_file)
    reasoner = load_config(ReasonerNodeConfig, "llm3d_reasoner", params_file)
    rows = (
        LayerTopic("map", mapper.occupancy_topic, "nav_msgs/msg/OccupancyGrid", True, "llm3d_mapper"),
        LayerTopic("cloud", mapper.map_cloud_topic, "sensor_msgs/msg/PointCloud2", True, "llm3d_mapper"),
        LayerTopic("objects", mapper.markers_topic, "visualization_msgs/msg/MarkerArray", True, "llm3d_mapper"),
        LayerTopic("grounding", reasoner.markers_topic, "visualization_msgs/msg/MarkerArray", True, "llm3d_reasoner"),
        LayerTopic("trajectory", mapper.trajectory_topic, "nav_msgs/msg/Path", True, "llm3d_mapper"),
        LayerTopic("goal", reasoner.goal_topic, "geometry_msgs/msg/PoseStamped", False, "llm3d_reasoner"),
        # The map's voxels coloured by the last ground query's score: an RViz layer (off by default
        # there, as it covers the RGB cloud); the snapshot counts it but draws the RGB cloud.
        LayerTopic("relevancy", reasoner.relevancy_topic, "sensor_msgs/msg/PointCloud2", True, "llm3d_reasoner"),
    )
    return SnapshotTopics(tuple(row for row in rows if row.topic), mapper.map_frame, reasoner.base_frame)


@dataclass
class Snapshot:
    """What a window of listening gave: the layers, message counts per layer, and why parts are missing."""

    layers: MapLayers
    received: dict[str, int]
    notes: list[str] = field(default_factory=list)
    topics: dict[str, str] = field(default_factory=dict)  # layer -> resolved topic name

    @property
    def empty(self) -> bool:
        return not any(self.received.values())


def take_snapshot(topics: SnapshotTopics, seconds: float, namespace: str = "") -> Snapshot:
    """Listens for `seconds` and returns the layers in topics.fixed_frame. Call with llm3d's ROS
    environment applied (llm3d_ros.env); namespace as llm3d_ros.node_set.normalize_namespace gives it.
    The newest message of each topic is kept (marker arrays are replayed into the markers RViz would
    show); a stack that stops during the window leaves what it last sent."""
    from visualization_msgs.msg import MarkerArray

    from llm3d_ros.bag_player import message_class
    from llm3d_ros.conversions import live_markers
    from llm3d_ros.listener import stack_listener
    from llm3d_ros.qos import latched_qos, reliable_qos
    from llm3d_ros.tf_buffer import TfListenerBuffer

    newest: dict[str, object] = {}
    received = {row.layer: 0 for row in topics.layers}
    resolved: dict[str, str] = {}
    with stack_listener("llm3d_snapshot", namespace) as (node, executor):
        for row in topics.layers:
            qos = latched_qos(1) if row.transient_local else reliable_qos(10)

            def on_msg(msg, layer: str = row.layer) -> None:
                received[layer] += 1
                if isinstance(msg, MarkerArray) and layer in newest:  # markers accumulate, as in RViz
                    msg = MarkerArray(markers=live_markers([newest[layer], msg]))
                newest[layer] = msg

            node.create_subscription(message_class(row.type_name), row.topic, on_msg, qos)
            resolved[row.layer] = node.resolve_topic_name(row.topic)
        tf = TfListenerBuffer(node, cache_s=max(30.0, seconds + 10.0))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        snapshot = Snapshot(MapLayers(frame=topics.fixed_frame), received, topics=resolved)
        _fill_layers(snapshot, newest, tf, topics)
        return snapshot


def _fill_layers(snapshot: Snapshot, newest: dict[str, object], tf, topics: SnapshotTopics) -> None:
    """Converts the newest message of each layer into snapshot.layers, in the fixed frame."""
    from llm3d_core.tf_tree import TransformError
    from llm3d_ros.conversions import (
        ConversionError,
        live_markers,
        marker_boxes,
        occupancy_grid_from_msg,
        path_to_xyz,
        pointcloud2_to_xyzrgb,
        pose_to_matrix,
    )

    fixed, layers, notes = topics.fixed_frame, snapshot.layers, snapshot.notes

    def to_fixed(frame_id: str, what: str) -> np.ndarray | None:
        if frame_id in ("", fixed):
            return np.eye(4)
        try:
            return tf.lookup_matrix(fixed, frame_id, 0, 0.0)
        except TransformError as err:
            notes.append(f"{what} in frame '{frame_id}' not drawn: no transform to '{fixed}' ({err})")
            return None

    for layer, msg in newest.items():
        where = f"{layer} ({snapshot.topics.get(layer, '?')})"
        try:
            if layer == "map":
                if msg.header.frame_id not in ("", fixed):
                    notes.append(f"{where} is in frame '{msg.header.frame_id}', not '{fixed}': not drawn")
                else:
                    layers.occupancy = occupancy_grid_from_msg(msg)
            elif layer == "cloud" and (T := to_fixed(msg.header.frame_id, where)) is not None:
                points, colors = pointcloud2_to_xyzrgb(msg)
                layers.points, layers.colors = _moved(T, points).astype(np.float32), colors
            elif layer in ("objects", "grounding"):
                boxes = []
                for frame_id, box in marker_boxes(live_markers([msg])):
                    T = to_fixed(frame_id, f"a marker of {where}")
                    if T is not None:
                        boxes.append(box.transformed(T))
                setattr(layers, layer, boxes)
            elif layer == "trajectory" and (T := to_fixed(msg.header.frame_id, where)) is not None:
                layers.trajectory = _moved(T, path_to_xyz(msg)).astype(np.float32)
            elif layer == "goal" and (T := to_fixed(msg.header.frame_id, where)) is not None:
                layers.goal = _planar_pose(T @ pose_to_matrix(msg.pose))
        except ConversionError as err:
            notes.append(f"{where} not drawn: {err}")
    try:
        layers.robot = _planar_pose(tf.lookup_matrix(fixed, topics.base_frame, 0, 0.0))
    except TransformError:
        pass  # no TF from the robot: the picture shows the map without it


def _moved(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) points moved by the 4x4 transform T."""
    return np.asarray(points, np.float64) @ T[:3, :3].T + T[:3, 3]  # (N, 3)


def _planar_pose(T: np.ndarray) -> tuple[float, float, float]:
    """(x, y, yaw) of a 4x4 pose, yaw about +z."""
    return float(T[0, 3]), float(T[1, 3]), math.atan2(T[1, 0], T[0, 0])
