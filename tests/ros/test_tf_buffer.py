"""The TF buffer: chained lookups, interpolation, static transforms and errors; then /tf over DDS."""

import time

import numpy as np
import pytest

from llm3d_ros.conversions import (
    compose_matrix,
    matrix_to_quaternion,
    matrix_to_transform_stamped,
    ns_to_stamp,
    quaternion_to_matrix,
)
from llm3d_ros.tf_buffer import TfListenerBuffer, TransformCore, TransformError

pytestmark = pytest.mark.ros

S = 1_000_000_000  # ns per second


def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg) / 2
    return np.array([0.0, 0.0, np.sin(a), np.cos(a)])


def add(core: TransformCore, parent: str, child: str, t_s: float, xyz, q=(0, 0, 0, 1), static=False) -> None:
    core.set_transform(parent, child, int(t_s * S), xyz, q, static=static)


@pytest.fixture
def robot() -> TransformCore:
    """map -> odom (dynamic) -> base_link (dynamic) -> camera -> camera_optical (static)."""
    core = TransformCore(cache_s=10.0)
    add(core, "map", "odom", 100.0, (1.0, 0.0, 0.0))
    add(core, "map", "odom", 102.0, (1.0, 0.0, 0.0))
    add(core, "odom", "base_link", 100.0, (0.0, 0.0, 0.0), rot_z(0))
    add(core, "odom", "base_link", 102.0, (2.0, 0.0, 0.0), rot_z(90))
    add(core, "base_link", "camera", 0.0, (0.0, 0.0, 1.0), static=True)
    # REP 103 optical frame: z forward, x right, y down.
    optical = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1.0]])
    core.set_transform("camera", "camera_optical", 0, (0, 0, 0), matrix_to_quaternion(optical[:3, :3]), static=True)
    return core


def test_chain_lookup_at_a_sample(robot):
    T = robot.lookup("map", "camera_optical", 102 * S)
    # base_link at x = 1 + 2, yawed 90 deg; camera 1 m up; optical z (forward) = base x rotated -> map +y.
    np.testing.assert_allclose(T[:3, 3], [3.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(T[:3, :3] @ [0, 0, 1], [0, 1, 0], atol=1e-12)
    # The inverse direction is the inverse matrix.
    np.testing.assert_allclose(robot.lookup("camera_optical", "map", 102 * S), np.linalg.inv(T), atol=1e-12)


def test_interpolation_at_a_mid_stamp(robot):
    T = robot.lookup("odom", "base_link", 101 * S)
    np.testing.assert_allclose(T[:3, 3], [1.0, 0.0, 0.0], atol=1e-12)  # linear in translation
    np.testing.assert_allclose(T[:3, :3], quaternion_to_matrix(rot_z(45)), atol=1e-12)  # slerp: half the angle
    quarter = robot.lookup("map", "base_link", int(100.5 * S))
    np.testing.assert_allclose(quarter[:3, 3], [1.5, 0.0, 0.0], atol=1e-12)


def test_siblings_resolve_through_their_common_parent(robot):
    add(robot, "odom", "dock", 0.0, (5.0, 0.0, 0.0), static=True)
    T = robot.lookup("dock", "base_link", 100 * S)
    np.testing.assert_allclose(T[:3, 3], [-5.0, 0.0, 0.0], atol=1e-12)


def test_static_transforms_hold_at_any_stamp_and_latest_is_zero(robot):
    a = robot.lookup("base_link", "camera_optical", 5 * S)
    b = robot.lookup("base_link", "camera_optical", 10_000 * S)
    np.testing.assert_allclose(a, b)
    latest = robot.lookup("map", "base_link", 0)
    np.testing.assert_allclose(latest[:3, 3], [3.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(robot.lookup("map", "map", 0), np.eye(4))


def test_errors_name_frames_and_range(robot):
    with pytest.raises(TransformError, match=r"frame 'nowhere' does not exist.*map -> odom"):
        robot.lookup("map", "nowhere", 101 * S)
    with pytest.raises(TransformError, match=r"after the newest.*available: \[100.000 s, 102.000 s\]"):
        robot.lookup("map", "camera_optical", 103 * S)
    with pytest.raises(TransformError, match=r"before the oldest"):
        robot.lookup("map", "base_link", 99 * S)
    add(robot, "world", "other", 0.0, (0, 0, 0), static=True)
    with pytest.raises(TransformError, match="not connected"):
        robot.lookup("map", "other", 101 * S)
    with pytest.raises(TransformError, match="finite"):
        add(robot, "map", "odom", 103.0, (np.nan, 0.0, 0.0))
    with pytest.raises(TransformError, match="zero length"):
        add(robot, "map", "odom", 103.0, (0.0, 0.0, 0.0), (0, 0, 0, 0))
    assert issubclass(TransformError, LookupError)


def test_history_is_bounded_and_sorted():
    core = TransformCore(cache_s=1.0)
    for i in reversed(range(40)):  # out of order on purpose
        add(core, "map", "cam", i * 0.1, (i * 0.1, 0.0, 0.0))
    np.testing.assert_allclose(core.lookup("map", "cam", int(3.05 * S))[:3, 3], [3.05, 0, 0], atol=1e-9)
    with pytest.raises(TransformError, match=r"available: \[2.900 s, 3.900 s\]"):
        core.lookup("map", "cam", int(2.5 * S))


def test_wait_for_returns_once_the_transform_arrives():
    import threading

    core = TransformCore()
    add(core, "map", "cam", 1.0, (0, 0, 0))
    threading.Timer(0.05, lambda: add(core, "map", "cam", 2.0, (2.0, 0, 0))).start()
    T = core.wait_for("map", "cam", int(1.5 * S), timeout_s=5.0)
    np.testing.assert_allclose(T[:3, 3], [1.0, 0, 0])
    with pytest.raises(TransformError):
        core.wait_for("map", "cam", 9 * S, timeout_s=0.05)


def test_listener_receives_tf_and_latched_tf_static_over_dds():
    """A static transform published before the listener exists still arrives (transient local)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    talker = rclpy.create_node("tf_test_talker", context=context)
    listener_node = rclpy.create_node("tf_test_listener", context=context)
    try:
        static_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        static_pub = talker.create_publisher(TFMessage, "/tf_static", static_qos)
        tf_pub = talker.create_publisher(TFMessage, "/tf", 10)
        static_pub.publish(TFMessage(transforms=[
            matrix_to_transform_stamped(compose_matrix((0, 0, 1.0), (0, 0, 0, 1)), "base_link", "camera")]))
        listener = TfListenerBuffer(listener_node)
        executor.add_node(talker)
        executor.add_node(listener_node)
        deadline = time.monotonic() + 20.0
        while tf_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        pose = compose_matrix((2.0, 0.0, 0.0), (0, 0, 0, 1))
        msg = TFMessage(transforms=[matrix_to_transform_stamped(pose, "map", "base_link", ns_to_stamp(50 * S))])
        while not listener.core.can_transform("map", "camera", 50 * S) and time.monotonic() < deadline:
            tf_pub.publish(msg)
            executor.spin_once(timeout_sec=0.05)
        T = listener.lookup_matrix("map", "camera", 50 * S)
        np.testing.assert_allclose(T[:3, 3], [2.0, 0.0, 1.0])
    finally:
        executor.shutdown()
        talker.destroy_node()
        listener_node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_listener_survives_the_issue_21_tf_sequence_over_dds():
    """Issue #21: a /tf sample for the camera's static optical frame (equal to the /tf_static mount,
    then different) and one odom -> base_link sample stamped a year ahead, then the normal stream:
    the camera pose is still looked up at later stamps, and the bad samples are counted."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    optical, mount_q, mount_t = "camera_color_optical_frame", (-0.5, 0.5, -0.5, 0.5), (0.1, 0.0, 0.5)
    mount = compose_matrix(mount_t, mount_q)
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    talker = rclpy.create_node("tf21_talker", context=context)
    listener_node = rclpy.create_node("tf21_listener", context=context)
    try:
        static_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        static_pub = talker.create_publisher(TFMessage, "/tf_static", static_qos)
        tf_pub = talker.create_publisher(TFMessage, "/tf", 100)
        static_pub.publish(TFMessage(transforms=[matrix_to_transform_stamped(mount, "base_link", optical)]))
        listener = TfListenerBuffer(listener_node)
        executor.add_node(talker)
        executor.add_node(listener_node)
        deadline = time.monotonic() + 20.0

        def spin_until(condition) -> None:
            while not condition() and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
            assert condition(), "timed out"

        spin_until(lambda: tf_pub.get_subscription_count() > 0 and optical in listener.core.frames())
        t_start = talker.get_clock().now().nanoseconds

        def base_x(stamp: int) -> float:
            return (stamp - t_start) * 1e-9  # the robot drives along x at 1 m/s

        def send(*transforms) -> None:
            tf_pub.publish(TFMessage(transforms=list(transforms)))
            executor.spin_once(timeout_sec=0.01)

        def odom_sample(stamp: int, x: float):
            return matrix_to_transform_stamped(compose_matrix((x, 0, 0), (0, 0, 0, 1)), "odom", "base_link",
                                               ns_to_stamp(stamp))

        def normal(stamp: int) -> None:
            send(matrix_to_transform_stamped(np.eye(4), "map", "odom", ns_to_stamp(stamp)),
                 odom_sample(stamp, base_x(stamp)))

        for _ in range(3):
            normal(talker.get_clock().now().nanoseconds)
        now = talker.get_clock().now().nanoseconds
        send(matrix_to_transform_stamped(mount, "base_link", optical, ns_to_stamp(now)))  # equal to the mount
        send(matrix_to_transform_stamped(np.eye(4), "base_link", optical, ns_to_stamp(now)))  # different
        send(odom_sample(now + 365 * 24 * 3600 * S, 1000.0))  # a year ahead
        stamps = []
        for _ in range(5):
            time.sleep(0.01)
            stamps.append(talker.get_clock().now().nanoseconds)
            normal(stamps[-1])
        spin_until(lambda: listener.core.can_transform("map", optical, stamps[-1]))
        mid = (stamps[-2] + stamps[-1]) // 2
        T = listener.lookup_matrix("map", optical, mid, timeout_s=0.0)
        np.testing.assert_allclose(T, compose_matrix((base_x(mid), 0, 0), (0, 0, 0, 1)) @ mount, atol=1e-6)
        latest = listener.lookup_matrix("map", "base_link", 0)
        np.testing.assert_allclose(latest[:3, 3], [base_x(stamps[-1]), 0, 0], atol=1e-6)  # not the year-ahead x
        counters = listener.counters()
        assert counters["static_conflict"] == 2 and counters["future"] == 1, counters
        assert counters["rejected"] == 3 and listener.rejected == 3 and counters["malformed"] == 0
    finally:
        executor.shutdown()
        talker.destroy_node()
        listener_node.destroy_node()
        rclpy.try_shutdown(context=context)
