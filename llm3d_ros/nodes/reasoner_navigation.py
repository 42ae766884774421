"""The `navigate_to` action of `llm3d_reasoner` (its module docstring's "Navigation"): ground the
target, choose and publish a goal, follow the robot on TF until one of the endings.

A mixin of ReasonerNode, kept in its own file: it uses the node's config (`cfg`), TF buffer (`tf`),
lock, worker (`_run`, `_count`), publishers (`_goal_pub`, `_markers_pub`, `_cmd_vel_pub`), the base's
goal status (`_base_goals`) and preemption counters (`_navigation_number`, `_navigation_instruction`,
`_navigations`), and `_shutting_down()`.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from action_msgs.msg import GoalStatus, GoalStatusArray
from geometry_msgs.msg import PoseStamped, Twist
from llm3d_interfaces.action import NavigateTo

from llm3d_core.mapping.goals import GoalPose, box_footprint_distance
from llm3d_ros.conversions import (
    ConversionError,
    goal_to_pose_stamped,
    grounded_to_object3d,
    grounding_markers,
    newest_goal_status,
    stamp_to_ns,
)
from llm3d_ros.tf_buffer import TransformError

GOAL_SHARE_OF_SUCCESS = 0.75  # the goal lies this share of success_distance from the target, at most


class NavigationActions:
    """navigate_to: goal choice, publication and following (runs in the action's callback group)."""

    def _robot_pose(self) -> tuple[float, float, float] | None:
        """(x, y, yaw) of base_frame in map_frame from TF, or None when TF has none."""
        try:
            T = self.tf.lookup_matrix(self.cfg.map_frame, self.cfg.base_frame, 0, self.cfg.tf_timeout_s)
        except TransformError:
            return None
        return float(T[0, 3]), float(T[1, 3]), math.atan2(float(T[1, 0]), float(T[0, 0]))

    def _navigate(self, goal_handle) -> NavigateTo.Result:
        cfg = self.cfg
        request, result = goal_handle.request, NavigateTo.Result()
        result.final_pose.header.frame_id = cfg.map_frame
        instruction = request.instruction.strip()[:80]
        with self._lock:  # a newer goal preempts older ones: their loops see the number change
            self._navigation_number += 1
            number = self._navigation_number
            self._navigation_instruction = instruction

        def finish(success: bool, message: str, how: str) -> NavigateTo.Result:
            result.success, result.message = success, message
            try:
                getattr(goal_handle, how)()  # succeed | abort | canceled
            except Exception:  # the context went down under us (Ctrl-C): nobody is left to tell
                if not self._shutting_down():
                    raise
                message = f"{message} (the result could not be sent: ROS is shutting down)"
            line = f"navigate_to '{instruction}': {message}"
            # Separate call sites: rclpy refuses one call site logging at two severities.
            if success:
                self.get_logger().info(line)
            else:
                self.get_logger().warning(line)
            return result

        distance = float(request.success_distance)
        if not math.isfinite(distance) or distance > cfg.max_success_distance:
            with self._lock:
                self._count("navigate", False, 0.0)
            return finish(False, f"success_distance {distance} is absurd: give a value in (0, "
                                 f"{cfg.max_success_distance}] m, or <= 0 for the default "
                                 f"{cfg.default_success_distance} m", "abort")
        if distance <= 0:
            distance = cfg.default_success_distance
        self._feedback(goal_handle, float("nan"), "grounding")
        pose = self._robot_pose()
        if pose is None:
            self.get_logger().warning(f"no robot pose ({cfg.map_frame} -> {cfg.base_frame}) in TF: choosing a goal "
                                      "without a reachability check", throttle_duration_sec=10.0)
        robot_xy = None if pose is None else pose[:2]
        ok, message, value = self._run(
            "navigate", lambda r: r.navigation_goal(request.instruction, robot_xy, GOAL_SHARE_OF_SUCCESS * distance))
        if not ok:
            return finish(False, message, "abort")
        preempted = self._preempted_by(number)
        if preempted:  # a newer goal arrived while this one was grounded: publish nothing
            return finish(False, preempted, "abort")
        target, goal = value
        try:
            result.target = grounded_to_object3d(target)
        except ConversionError as err:
            return finish(False, str(err), "abort")
        self._markers_pub.publish(grounding_markers(request.instruction.strip(), [target], cfg.map_frame,
                                                    self.get_clock().now().to_msg()))
        if pose is not None and box_footprint_distance(pose[:2], target.box)[0] <= distance:
            result.final_pose = self._pose_stamped(pose)
            return finish(True, f"already within {distance:.2f} m of target {target.id} '{target.label}'", "succeed")

        stamp = self.get_clock().now().to_msg()
        self._goal_pub.publish(goal_to_pose_stamped(goal, cfg.map_frame, stamp))
        self.get_logger().info(f"goal ({goal.x:.2f}, {goal.y:.2f}, yaw {goal.yaw:.2f}) published for target "
                               f"{target.id} '{target.label}', {goal.target_distance:.2f} m from it")
        with self._lock:
            self._navigations += 1
        try:
            return self._follow(goal_handle, number, stamp_to_ns(stamp), goal, target, distance, result, finish)
        finally:
            with self._lock:
                self._navigations -= 1

    def _follow(self, goal_handle, number: int, published_ns: int, goal, target, distance: float,
                result: NavigateTo.Result, finish: Callable[[bool, str, str], NavigateTo.Result]) -> NavigateTo.Result:
        """Feedback until the robot is within `distance` of the target, or one of the endings of the
        module docstring: the base gave up, no progress, timeout, preempted, cancelled, shutdown."""
        cfg = self.cfg
        started = time.monotonic()
        best_to_goal, last_progress = math.inf, started  # progress: the best distance to the goal shrank
        where = "no robot pose in TF"
        while True:
            if goal_handle.is_cancel_requested:
                self._stop_robot()
                return finish(False, "cancelled; the robot was told to stop", "canceled")
            if self._shutting_down():
                return finish(False, "the reasoner is shutting down", "abort")
            preempted = self._preempted_by(number)
            if preempted:  # the newer goal's pose already replaced ours downstream: no stop command
                return finish(False, preempted, "abort")
            base = self._base_verdict(published_ns)
            if base:
                return finish(False, f"{base} ({where})", "abort")
            pose = self._robot_pose()
            now = time.monotonic()
            if pose is not None:
                result.final_pose = self._pose_stamped(pose)
                to_goal = math.hypot(goal.x - pose[0], goal.y - pose[1])
                self._feedback(goal_handle, to_goal, "moving")
                to_target = float(box_footprint_distance(pose[:2], target.box)[0])
                where = f"{to_target:.2f} m from target {target.id} '{target.label}'"
                if to_target <= distance:
                    return finish(True, f"arrived: {where}", "succeed")
                if to_goal < best_to_goal - cfg.progress_min_m:
                    best_to_goal, last_progress = to_goal, now
            if now - last_progress > cfg.progress_timeout_s:
                self._stop_robot()
                return finish(False, f"no progress: the robot got no {cfg.progress_min_m:g} m closer to the goal in "
                                     f"{cfg.progress_timeout_s:g} s ({where}); the base may have refused the goal",
                              "abort")
            if now - started > cfg.navigate_timeout_s:
                self._stop_robot()
                return finish(False, f"timed out after {cfg.navigate_timeout_s:.0f} s ({where})", "abort")
            time.sleep(cfg.feedback_period_s)

    def _feedback(self, goal_handle, distance_remaining: float, state: str) -> None:
        try:
            goal_handle.publish_feedback(NavigateTo.Feedback(distance_remaining=distance_remaining, state=state))
        except Exception:  # the context went down under us (Ctrl-C); the loop ends on its next check
            if not self._shutting_down():
                raise

    def _preempted_by(self, number: int) -> str:
        """Why navigation `number` is preempted ('' while it is the newest)."""
        with self._lock:
            if self._navigation_number == number:
                return ""
            return f"preempted by a newer navigate_to goal ('{self._navigation_instruction}')"

    def _on_base_goals(self, msg: GoalStatusArray) -> None:
        self._base_goals = msg

    def _base_verdict(self, published_ns: int) -> str:
        """'' unless the base ended the goal published at published_ns without reaching it."""
        msg = self._base_goals
        status = None if msg is None else newest_goal_status(msg, published_ns)
        if status == GoalStatus.STATUS_ABORTED:
            return f"the base aborted the goal (refused, unreachable or stuck; {self.cfg.goal_status_topic})"
        if status == GoalStatus.STATUS_CANCELED:
            return f"the base cancelled the goal (a newer goal or teleop took over; {self.cfg.goal_status_topic})"
        return ""

    def _pose_stamped(self, pose: tuple[float, float, float]) -> PoseStamped:
        return goal_to_pose_stamped(GoalPose(pose[0], pose[1], pose[2], 0.0), self.cfg.map_frame,
                                    self.get_clock().now().to_msg())

    def _stop_robot(self) -> None:
        self._cmd_vel_pub.publish(Twist())
