"""TransformCore against the sample sequences of issue #21: one /tf message must never stop lookups.

Static and dynamic transforms kept apart, samples far ahead of the clock or behind the history
rejected, jumps of a stream without a clock confirmed before they replace a history, and the
history cleared when the clock jumps back. No ROS here (the DDS path is tests/ros/test_tf_buffer.py).
"""

import numpy as np
import pytest

from llm3d_core.tf_tree import JUMP_CONFIRM, Notice, TransformCore, TransformError

S = 1_000_000_000  # ns per second
YEAR = 365 * 24 * 3600 * S
T0 = 1_790_000_000 * S  # a wall-clock stamp (2026)
OPTICAL_Q = (-0.5, 0.5, -0.5, 0.5)  # camera_link -> camera_color_optical_frame (REP 103: z forward)
MOUNT_T = (0.1, 0.0, 0.5)


def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg) / 2
    return np.array([0.0, 0.0, np.sin(a), np.cos(a)])


def odom(core: TransformCore, stamp: int, x: float, now: int | None = None, parent: str = "odom"):
    return core.set_transform(parent, "base_link", stamp, (x, 0.0, 0.0), rot_z(0), now_ns=now)


@pytest.fixture
def robot() -> TransformCore:
    """map -> odom (static here), odom -> base_link (/tf, x = t - T0 in s, samples every 0.1 s over
    2 s), base_link -> camera_color_optical_frame (/tf_static mount)."""
    core = TransformCore(cache_s=10.0)
    core.set_transform("map", "odom", 0, (0.0, 0.0, 0.0), (0, 0, 0, 1), static=True)
    core.set_transform("base_link", "camera_color_optical_frame", 0, MOUNT_T, OPTICAL_Q, static=True)
    for i in range(21):
        assert odom(core, T0 + i * S // 10, i / 10, now=T0 + i * S // 10).notice is Notice.NONE
    return core


def camera(core: TransformCore, stamp: int) -> np.ndarray:
    return core.lookup("map", "camera_color_optical_frame", stamp)


def test_tf_sample_equal_to_the_static_mount_is_ignored_and_reported_once(robot):
    before = [camera(robot, T0 + k * S // 4) for k in range(9)]
    first = robot.set_transform("base_link", "camera_color_optical_frame", T0 + 2 * S, MOUNT_T, OPTICAL_Q,
                                now_ns=T0 + 2 * S)
    assert first.notice is Notice.STATIC_CONFLICT and not first.stored and first.first
    assert "equal to it" in first.message and "camera_color_optical_frame" in first.message
    again = robot.set_transform("base_link", "camera_color_optical_frame", T0 + 2 * S + 1, MOUNT_T, OPTICAL_Q,
                                now_ns=T0 + 2 * S)
    assert again.notice is Notice.STATIC_CONFLICT and not again.first  # logged once per frame pair
    # Later frames still get a pose: the "no camera pose for the frame" from here on.
    for i in range(21, 31):
        odom(robot, T0 + i * S // 10, i / 10, now=T0 + i * S // 10)
    after = [camera(robot, T0 + k * S // 4) for k in range(9)]
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_allclose(camera(robot, T0 + 25 * S // 10)[:3, 3], [2.6, 0.0, 0.5], atol=1e-9)
    assert robot.frames()["camera_color_optical_frame"] == "base_link"
    assert robot.counts()["static_conflict"] == 2


def test_tf_sample_different_from_the_static_mount_changes_nothing(robot):
    static_pose = robot.lookup("base_link", "camera_color_optical_frame", 0)
    moved = robot.set_transform("base_link", "camera_color_optical_frame", T0 + S, (5.0, 5.0, 5.0), (0, 0, 0, 1),
                                now_ns=T0 + S)
    assert moved.notice is Notice.STATIC_CONFLICT and moved.first and "different" in moved.message
    # Another parent for the same child is another misconfiguration, reported once too.
    other = robot.set_transform("map", "camera_color_optical_frame", T0 + S, (0, 0, 0), (0, 0, 0, 1), now_ns=T0 + S)
    assert other.notice is Notice.STATIC_CONFLICT and other.first
    np.testing.assert_allclose(robot.lookup("base_link", "camera_color_optical_frame", T0 + S), static_pose)
    np.testing.assert_allclose(robot.lookup("base_link", "camera_color_optical_frame", 0), static_pose)
    assert robot.frames()["camera_color_optical_frame"] == "base_link"


def test_a_year_ahead_odom_sample_is_rejected_and_later_samples_interpolate(robot):
    now = T0 + 2 * S
    update = odom(robot, now + YEAR, 999.0, now=now)
    assert update.notice is Notice.FUTURE and not update.stored
    assert "365.0 days after this node's clock" in update.message
    np.testing.assert_allclose(robot.lookup("odom", "base_link", 0)[:3, 3], [2.0, 0, 0])  # latest is not the outlier
    np.testing.assert_allclose(robot.lookup("odom", "base_link", T0 + 15 * S // 10)[:3, 3], [1.5, 0, 0])
    odom(robot, T0 + 3 * S, 3.0, now=T0 + 3 * S)
    odom(robot, T0 + 4 * S, 4.0, now=T0 + 4 * S)
    np.testing.assert_allclose(robot.lookup("odom", "base_link", T0 + 35 * S // 10)[:3, 3], [3.5, 0, 0], atol=1e-9)
    np.testing.assert_allclose(camera(robot, T0 + 35 * S // 10)[:3, 3], [3.6, 0.0, 0.5], atol=1e-9)
    np.testing.assert_allclose(robot.lookup("odom", "base_link", 0)[:3, 3], [4.0, 0, 0])
    assert robot.counts()["future"] == 1


def test_a_forward_dated_sample_within_max_future_is_kept_without_cutting_the_recent_past():
    core = TransformCore(cache_s=2.0, max_future_s=5.0)
    for i in range(21):
        odom(core, T0 + i * S // 10, i / 10, now=T0 + 2 * S)
    # AMCL-style forward dating (stamp = now + 4 s): accepted, but the cut is anchored at the clock.
    assert odom(core, T0 + 6 * S, 6.0, now=T0 + 2 * S).notice is Notice.NONE
    np.testing.assert_allclose(core.lookup("odom", "base_link", T0 + S)[:3, 3], [1.0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(core.lookup("odom", "base_link", 0)[:3, 3], [6.0, 0, 0])


def test_a_sample_older_than_the_history_is_rejected(robot):
    before = robot.lookup("odom", "base_link", T0 + S)
    update = odom(robot, T0 - 30 * S, -30.0, now=T0 + 2 * S)
    assert update.notice is Notice.PAST and not update.stored and "32.000 s before" in update.message
    np.testing.assert_allclose(robot.lookup("odom", "base_link", T0 + S), before)
    with pytest.raises(TransformError, match="before the oldest"):
        robot.lookup("odom", "base_link", T0 - 30 * S)
    assert robot.counts()["past"] == 1


def test_stamps_far_behind_the_clock_are_fine_when_the_stream_is_consistent():
    """A bag played into a live node without a clock: 2023 stamps, 2026 clock (tf2 takes them too)."""
    core = TransformCore()
    recorded = 1_700_000_000 * S
    for i in range(5):
        assert odom(core, recorded + i * S, float(i), now=T0 + i * S).stored
    np.testing.assert_allclose(core.lookup("odom", "base_link", recorded + S // 2)[:3, 3], [0.5, 0, 0])


def test_a_static_transform_replaces_a_dynamic_history(robot):
    robot.set_transform("base_link", "arm", T0, (1.0, 0, 0), (0, 0, 0, 1), now_ns=T0)
    robot.set_transform("base_link", "arm", T0 + S, (2.0, 0, 0), (0, 0, 0, 1), now_ns=T0 + S)
    update = robot.set_transform("base_link", "arm", 0, (0.0, 0.3, 0.0), (0, 0, 0, 1), static=True, now_ns=T0 + S)
    assert update.notice is Notice.STATIC_OVER_DYNAMIC and update.stored and update.first
    assert "2 samples" in update.message
    for stamp in (0, T0 - 100 * S, T0 + S // 2, T0 + 100 * S):  # static: any stamp
        np.testing.assert_allclose(robot.lookup("base_link", "arm", stamp)[:3, 3], [0.0, 0.3, 0.0])
    # From now on /tf samples for it are conflicts; republishing /tf_static (a new calibration) is not.
    assert robot.set_transform("base_link", "arm", T0 + 2 * S, (9.0, 0, 0), (0, 0, 0, 1),
                               now_ns=T0 + 2 * S).notice is Notice.STATIC_CONFLICT
    assert robot.set_transform("base_link", "arm", 0, (0.0, 0.4, 0.0), (0, 0, 0, 1), static=True).notice is Notice.NONE
    np.testing.assert_allclose(robot.lookup("base_link", "arm", T0)[:3, 3], [0.0, 0.4, 0.0])


def test_reparenting_a_dynamic_frame_restarts_its_history_and_is_reported_once(robot):
    update = odom(robot, T0 + 3 * S, 7.0, now=T0 + 3 * S, parent="map")
    assert update.notice is Notice.REPARENTED and update.stored and update.first
    assert odom(robot, T0 + 4 * S, 8.0, now=T0 + 4 * S, parent="map").notice is Notice.NONE
    np.testing.assert_allclose(robot.lookup("map", "base_link", T0 + 35 * S // 10)[:3, 3], [7.5, 0, 0])
    with pytest.raises(TransformError, match="before the oldest"):
        robot.lookup("map", "base_link", T0 + S)
    assert odom(robot, T0 + 5 * S, 0.0, now=T0 + 5 * S).first  # back to odom: another pair
    flip = odom(robot, T0 + 6 * S, 0.0, now=T0 + 6 * S, parent="map")  # two publishers disagreeing
    assert flip.notice is Notice.REPARENTED and not flip.first  # logged once per pair, still counted
    assert robot.counts()["reparented"] == 3


# ---------------------------------------------------------------- without a clock (the bag reader)
def stream(core: TransformCore, start: int, n: int, x0: float = 0.0):
    return [odom(core, start + i * S // 10, x0 + i / 10) for i in range(n)]


def test_without_a_clock_a_lone_outlier_is_held_then_dropped():
    core = TransformCore()
    stream(core, T0, 21)
    held = odom(core, T0 + YEAR, 999.0)
    assert held.notice is Notice.HELD and not held.stored
    np.testing.assert_allclose(core.lookup("odom", "base_link", 0)[:3, 3], [2.0, 0, 0])  # not the outlier
    np.testing.assert_allclose(core.lookup("odom", "base_link", T0 + S // 2)[:3, 3], [0.5, 0, 0], atol=1e-9)
    update = odom(core, T0 + 21 * S // 10, 2.1)
    assert update.notice is Notice.OUTLIER_DROPPED and update.stored and "not followed by others" in update.message
    stream(core, T0 + 22 * S // 10, 10, 2.2)
    np.testing.assert_allclose(core.lookup("odom", "base_link", T0 + 25 * S // 10)[:3, 3], [2.5, 0, 0], atol=1e-9)
    np.testing.assert_allclose(core.lookup("odom", "base_link", T0 + S // 2)[:3, 3], [0.5, 0, 0], atol=1e-9)
    assert core.counts()["future"] == 1 and core.counts()["jump"] == 0


def test_without_a_clock_a_gap_in_the_recording_restarts_the_history():
    core = TransformCore()
    stream(core, T0, 11)
    updates = stream(core, T0 + 60 * S, JUMP_CONFIRM + 2, 60.0)  # the publisher was silent for a minute
    assert [u.notice for u in updates] == [Notice.HELD] * (JUMP_CONFIRM - 1) + [Notice.JUMP] + [Notice.NONE] * 2
    assert "jumped ahead" in updates[JUMP_CONFIRM - 1].message
    np.testing.assert_allclose(core.lookup("odom", "base_link", T0 + 60 * S + S // 20)[:3, 3], [60.05, 0, 0],
                               atol=1e-9)  # the held samples are in the history
    assert core.counts()["jump"] == 1


def test_without_a_clock_a_first_sample_that_is_the_outlier_is_outvoted():
    core = TransformCore()
    odom(core, T0 + YEAR, 999.0)
    updates = stream(core, T0, JUMP_CONFIRM + 1)
    assert updates[JUMP_CONFIRM - 1].notice is Notice.JUMP and "jumped back" in updates[JUMP_CONFIRM - 1].message
    np.testing.assert_allclose(core.lookup("odom", "base_link", 0)[:3, 3], [JUMP_CONFIRM / 10, 0, 0], atol=1e-9)


def test_without_a_clock_stale_samples_out_of_order_never_confirm_a_jump():
    core = TransformCore(cache_s=1.0)
    for i in reversed(range(40)):
        odom(core, T0 + i * S // 10, i / 10)
    with pytest.raises(TransformError, match=r"before the oldest"):
        core.lookup("odom", "base_link", T0 + 25 * S // 10)
    np.testing.assert_allclose(core.lookup("odom", "base_link", T0 + 305 * S // 100)[:3, 3], [3.05, 0, 0], atol=1e-9)
    assert core.counts()["jump"] == 0


def test_a_clock_of_zero_counts_as_no_clock():
    core = TransformCore()
    stream(core, T0, 5)
    assert odom(core, T0 + YEAR, 999.0, now=0).notice is Notice.HELD  # sim time before /clock: not "future"


# ---------------------------------------------------------------- the clock jumping back
def test_the_clock_jumping_back_clears_dynamic_history_but_keeps_static(robot):
    assert robot.observe_clock(T0 + 2 * S + S // 2) == ""  # forward: nothing
    assert robot.observe_clock(T0 + 2 * S) == ""  # 0.5 s back: within tolerance (an NTP step), kept
    robot.lookup("odom", "base_link", T0 + S)
    message = robot.observe_clock(100 * S)  # sim time restarted
    assert "jumped back" in message and "1 frame(s)" in message
    with pytest.raises(TransformError):
        robot.lookup("odom", "base_link", 0)
    np.testing.assert_allclose(robot.lookup("base_link", "camera_color_optical_frame", 0)[:3, 3], MOUNT_T)
    odom(robot, 100 * S, 1.0, now=100 * S)
    odom(robot, 101 * S, 2.0, now=101 * S)
    np.testing.assert_allclose(camera(robot, 100 * S + S // 2)[:3, 3], [1.6, 0.0, 0.5], atol=1e-9)
    assert robot.counts()["clock_jump_back"] == 1


def test_set_transform_notices_a_clock_jump_itself(robot):
    odom(robot, 50 * S, 5.0, now=50 * S)
    np.testing.assert_allclose(robot.lookup("odom", "base_link", 0)[:3, 3], [5.0, 0, 0])  # not the old newest
    assert robot.counts()["clock_jump_back"] == 1


def test_max_future_s_is_validated():
    with pytest.raises(ValueError, match="max_future_s must be > 0, got 0"):
        TransformCore(max_future_s=0)
