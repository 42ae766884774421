"""QoS of the llm3d topics and services, defined once for the nodes, their clients and the tools.

Topics come in three kinds: camera-like streams (best effort, newest few: a late frame is worth
less than the next one), latched state (reliable, transient local: a late joiner gets the last
map, status or static transform) and reliable queues (goals, transforms, odometry)."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# A client created just now may have matched the server's request reader before the server's
# response writer has matched the client's response reader; a reply sent in that gap is lost
# (rmw_fastrtps waits 100 ms for the match, then gives up). Measured here: 30 clients created
# 0.2 s before their first call lost 2-6 of 30 replies; after 1 s, 0 of 60. Clients wait this long
# after they first see the service.
DISCOVERY_SETTLE_S = 0.5


def service_qos(depth: int = 0) -> QoSProfile:
    """Reliable service QoS keeping all requests/replies (depth 0) or the newest `depth`.

    KEEP_ALL on both ends: a burst of requests, or of replies to one caller, is queued by DDS
    until taken instead of the oldest being overwritten (services default to KEEP_LAST 10).

    Callers need it too, not only the server: Fast DDS delivers every reply of a service to every
    client's response reader, and the client drops the ones for others only when it takes them.
    With KEEP_LAST 10, a process that is slow to take (a busy Python executor) loses its own reply
    once 10 replies to other callers arrive first. Measured here (30 clients in one process with a
    busy thread, a server answering at once, 15 bursts): default QoS lost 212 of 450 replies,
    keep-all 0 of 450."""
    if depth == 0:
        return QoSProfile(depth=1, history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def sensor_qos(depth: int = 2) -> QoSProfile:
    """Best effort, the newest `depth` messages: camera streams, and commands that must match
    reliable and best-effort publishers alike (cmd_vel from teleop or Nav2)."""
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE,
                      history=HistoryPolicy.KEEP_LAST)


def latched_qos(depth: int = 1) -> QoSProfile:
    """Reliable and transient local: the last `depth` messages reach subscribers that join later."""
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                      history=HistoryPolicy.KEEP_LAST)


def reliable_qos(depth: int = 10) -> QoSProfile:
    """Reliable and volatile, the newest `depth` queued: goals, transforms, odometry."""
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                      history=HistoryPolicy.KEEP_LAST)
