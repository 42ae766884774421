"""`llm3d bag play`: publishes a recorded bag into a running ROS 2 graph with its original timing.

There is no `ros2 bag` in a pip-installed ROS 2, so this is the project's own player. Messages
are published as the bag stores them: raw CDR bytes through rclpy's serialized publishing
(`Publisher.publish(bytes)`), never deserialized, so any message type whose Python package is
installed plays. Each message goes out when wall time since the start reaches its receive-time
offset divided by `rate`. QoS per topic mirrors what nodes expect: /tf_static reliable and
transient local (late joiners still get the static tree), /tf reliable with a deep queue, every
other topic reliable with depth 10 (which best-effort subscribers, like the mapper's camera
inputs, accept).
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from llm3d_core.bags.config import BagConfig
from llm3d_core.bags.source import BagSource

log = logging.getLogger(__name__)
NODE_NAME = "llm3d_bag"


@dataclass
class PlayStats:
    messages: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # wall time from the first to the last message
    bag_seconds: float = 0.0  # the same span in bag time
    max_lag_s: float = 0.0  # worst lateness of a message against its schedule
    skipped_topics: dict[str, str] = field(default_factory=dict)  # topic -> why it was not played
    damage: str | None = None

    def to_dict(self) -> dict:
        import dataclasses

        return dataclasses.asdict(self)


def message_class(msgtype: str) -> type:
    """'sensor_msgs/msg/Image' -> the rclpy message class (ImportError/AttributeError when not installed)."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def _qos(topic: str, config: BagConfig):
    from llm3d_ros.qos import latched_qos, reliable_qos

    if topic == config.tf_static_topic:
        return latched_qos(100)
    return reliable_qos(100 if topic == config.tf_topic else 10)


def play_bag(path: str | Path, rate: float = 1.0, config: BagConfig | None = None, topics: list[str] | None = None,
             wait_for_subscribers_s: float = 5.0, node=None) -> PlayStats:
    """Publishes the bag at `path`; returns counts and timing. `node`: an rclpy node to publish
    from (default: a new node named llm3d_bag in a context of its own, shut down afterwards).

    Before the first message it waits up to `wait_for_subscribers_s` for a subscriber on the
    colour topic, so a stack that is still starting does not miss the beginning.
    """
    import rclpy

    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    config = config or BagConfig()
    source = BagSource(path)
    own = node is None
    context = None
    if own:
        context = rclpy.Context()
        rclpy.init(context=context)
        node = rclpy.create_node(NODE_NAME, context=context)
    stats = PlayStats()
    try:
        wanted = set(source.topics) if not topics else {"/" + t.lstrip("/") for t in topics}
        publishers = {}
        for topic in sorted(wanted):
            summary = source.topics.get(topic)
            if summary is None:
                stats.skipped_topics[topic] = "not in the bag"
                continue
            try:
                publishers[topic] = node.create_publisher(message_class(summary.msgtype), topic, _qos(topic, config))
            except (ImportError, AttributeError, ValueError) as err:
                stats.skipped_topics[topic] = f"message type {summary.msgtype} is not installed ({err})"
                log.warning("not playing %s: %s", topic, stats.skipped_topics[topic])
        color = publishers.get(config.color_topic)
        deadline = time.monotonic() + wait_for_subscribers_s
        while color is not None and color.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        start_wall = first_bag = last_bag = None
        for topic, _msgtype, t_ns, raw in source.messages(set(publishers)):
            if first_bag is None:
                start_wall, first_bag = time.monotonic(), t_ns
            due = start_wall + (t_ns - first_bag) * 1e-9 / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                stats.max_lag_s = max(stats.max_lag_s, -delay)
            publishers[topic].publish(bytes(raw))
            stats.messages[topic] = stats.messages.get(topic, 0) + 1
            last_bag = t_ns
        if first_bag is not None:
            stats.seconds = round(time.monotonic() - start_wall, 3)
            stats.bag_seconds = round((last_bag - first_bag) * 1e-9, 3)
        _linger(publishers.values(), 2.0)
        stats.max_lag_s = round(stats.max_lag_s, 4)
        stats.damage = source.damage
    finally:
        source.close()
        if own:
            node.destroy_node()
            rclpy.try_shutdown(context=context)
    return stats


def _linger(publishers, timeout_s: float) -> None:
    """Gives reliable messages still in flight up to timeout_s (in all) to reach their readers
    before the publishers go away; best-effort readers never acknowledge, so this is bounded."""
    from rclpy.duration import Duration

    deadline = time.monotonic() + timeout_s
    for publisher in publishers:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        publisher.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9)))
