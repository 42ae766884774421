"""`Llm3dClient`: one facade over the reasoner's services and action, for scripts, the CLI and benchmarks.

    with Llm3dClient() as client:
        reply = client.ask("what is on the table?")            # AskReply(success, message, answer, session_id)
        client.ask("and left of it?", reply.session_id)        # the same dialog
        objects = client.ground("the red mug").objects         # GroundReply with boxes (6,) in the map frame
        steps = client.plan("make coffee").steps
        result = client.navigate("go to the sofa", on_feedback=print)

Every call waits for the server at most `server_timeout_s` and for the answer at most
`timeout_s`; when nothing answers, a `StackNotRunning` error says so and how to start the stack.
The client owns a private rclpy context and node, so it can live beside other rclpy users in a
process, and spins only while a call waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llm3d_ros.env import apply_ros_environment


class StackNotRunning(TimeoutError):
    """No reasoner answered in time; the message names the service or action and how to start one."""


@dataclass
class AskReply:
    success: bool
    message: str
    answer: str
    session_id: str
    seconds: float  # round trip


@dataclass
class GroundedObject:
    id: int
    label: str
    score: float
    box: np.ndarray  # (6,) min xyz, max xyz in `frame_id`


@dataclass
class GroundReply:
    success: bool
    message: str
    frame_id: str
    objects: list[GroundedObject]
    seconds: float


@dataclass
class PlanReply:
    success: bool
    message: str
    steps: list[str]
    seconds: float


@dataclass
class NavigateReply:
    success: bool
    message: str
    status: str  # succeeded | aborted | canceled | unknown
    target: GroundedObject | None
    final_pose: tuple[float, float, float] | None  # x, y, yaw in the map frame
    feedback: list[tuple[float, str]] = field(default_factory=list)  # (distance_remaining, state)
    seconds: float = 0.0


class Llm3dClient:
    """Clients of `ask`, `ground`, `plan` and `navigate_to` under `namespace` (see the module docstring)."""

    def __init__(self, namespace: str = "", server_timeout_s: float = 10.0, timeout_s: float = 120.0,
                 node_name: str = "llm3d_client") -> None:
        apply_ros_environment()  # before rclpy loads: RMW, discovery range, Fast DDS profile
        import rclpy
        from llm3d_interfaces.action import NavigateTo
        from llm3d_interfaces.srv import Ask, Ground, Plan
        from rclpy.action import ActionClient
        from rclpy.executors import SingleThreadedExecutor

        from llm3d_ros.qos import service_qos

        self._rclpy = rclpy
        self._types = {"Ask": Ask, "Ground": Ground, "Plan": Plan, "NavigateTo": NavigateTo}
        self.server_timeout_s, self.timeout_s = server_timeout_s, timeout_s
        prefix = namespace.rstrip("/") + "/" if namespace else ""
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        try:
            self.node = rclpy.create_node(node_name, context=self.context)
            self._executor = SingleThreadedExecutor(context=self.context)
            self._executor.add_node(self.node)
            qos = service_qos()
            self._ask = self.node.create_client(Ask, f"{prefix}ask", qos_profile=qos)
            self._ground = self.node.create_client(Ground, f"{prefix}ground", qos_profile=qos)
            self._plan = self.node.create_client(Plan, f"{prefix}plan", qos_profile=qos)
            self._navigate = ActionClient(self.node, NavigateTo, f"{prefix}navigate_to", goal_service_qos_profile=qos,
                                          result_service_qos_profile=qos, cancel_service_qos_profile=qos)
            self._settled: set[str] = set()  # services seen for DISCOVERY_SETTLE_S already
        except BaseException:
            rclpy.try_shutdown(context=self.context)
            raise

    def spin_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Serves this client's own subscriptions (`client.node`) until done() or timeout_s; True when done."""
        return self._spin_until(done, timeout_s)

    # ------------------------------------------------------------ plumbing
    def _spin_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            self._executor.spin_once(timeout_sec=0.05)
        return True

    def _wait_for(self, ready: Callable[[], bool], name: str) -> None:
        if not self._spin_until(ready, self.server_timeout_s):
            raise StackNotRunning(f"no llm3d reasoner answered on '{name}' within {self.server_timeout_s:g} s: "
                                  "is the stack running (`llm3d bringup` or `llm3d bringup --sim`) with the same "
                                  "ROS_DOMAIN_ID?")

    def _call(self, client, request, timeout_s: float | None) -> tuple[Any, float]:
        self._wait_for(client.service_is_ready, client.srv_name)
        if client.srv_name not in self._settled:  # a reply sent before discovery settles can be lost
            from llm3d_ros.qos import DISCOVERY_SETTLE_S

            self._spin_until(lambda: False, DISCOVERY_SETTLE_S)
            self._settled.add(client.srv_name)
        t0 = time.perf_counter()
        future = client.call_async(request)
        limit = timeout_s or self.timeout_s
        if not self._spin_until(future.done, limit):
            client.remove_pending_request(future)
            raise TimeoutError(f"'{client.srv_name}' did not answer within {limit:g} s")
        return future.result(), time.perf_counter() - t0

    @staticmethod
    def _object(msg) -> GroundedObject:
        from llm3d_ros.conversions import object3d_box

        return GroundedObject(int(msg.id), msg.label, float(msg.score), object3d_box(msg))

    # ------------------------------------------------------------ API
    def ask(self, question: str, session_id: str = "", timeout_s: float | None = None) -> AskReply:
        """One dialog turn; pass the returned session_id to continue the conversation."""
        req = self._types["Ask"].Request(question=question, session_id=session_id)
        res, seconds = self._call(self._ask, req, timeout_s)
        return AskReply(res.success, res.message, res.answer, res.session_id, seconds)

    def ground(self, query: str, max_results: int = 0, timeout_s: float | None = None) -> GroundReply:
        req = self._types["Ground"].Request(query=query, max_results=max_results)
        res, seconds = self._call(self._ground, req, timeout_s)
        return GroundReply(res.success, res.message, res.header.frame_id, [self._object(o) for o in res.objects],
                           seconds)

    def plan(self, instruction: str, timeout_s: float | None = None) -> PlanReply:
        res, seconds = self._call(self._plan, self._types["Plan"].Request(instruction=instruction), timeout_s)
        return PlanReply(res.success, res.message, list(res.steps), seconds)

    def navigate(self, instruction: str, success_distance: float = 0.0, timeout_s: float | None = None,
                 on_feedback: Callable[[float, str], None] | None = None) -> NavigateReply:
        """Sends a NavigateTo goal and waits for its result; a timeout (or Ctrl-C) cancels the goal."""
        from action_msgs.msg import GoalStatus

        from llm3d_core.messages import quaternion_to_yaw

        self._wait_for(self._navigate.server_is_ready, "navigate_to")
        t0 = time.perf_counter()
        feedback: list[tuple[float, str]] = []

        def on_fb(msg) -> None:
            item = (float(msg.feedback.distance_remaining), msg.feedback.state)
            feedback.append(item)
            if on_feedback is not None:
                on_feedback(*item)

        goal = self._types["NavigateTo"].Goal(instruction=instruction, success_distance=float(success_distance))
        sent = self._navigate.send_goal_async(goal, feedback_callback=on_fb)
        if not self._spin_until(sent.done, self.server_timeout_s):
            raise StackNotRunning(f"navigate_to did not accept the goal within {self.server_timeout_s:g} s")
        handle = sent.result()
        if not handle.accepted:
            return NavigateReply(False, "the goal was rejected", "rejected", None, None, feedback,
                                 time.perf_counter() - t0)
        result_future = handle.get_result_async()
        limit = timeout_s or self.timeout_s
        try:
            finished = self._spin_until(result_future.done, limit)
        except KeyboardInterrupt:
            finished = False
        if not finished:
            cancel = handle.cancel_goal_async()
            self._spin_until(cancel.done, 5.0)
            self._spin_until(result_future.done, 5.0)
            if not result_future.done():
                return NavigateReply(False, f"no result within {limit:g} s; cancel requested", "unknown", None,
                                     None, feedback, time.perf_counter() - t0)
        wrapped = result_future.result()
        res = wrapped.result
        status = {GoalStatus.STATUS_SUCCEEDED: "succeeded", GoalStatus.STATUS_ABORTED: "aborted",
                  GoalStatus.STATUS_CANCELED: "canceled"}.get(wrapped.status, "unknown")
        target = self._object(res.target) if res.target.label or res.target.size.x > 0 else None
        p, q = res.final_pose.pose.position, res.final_pose.pose.orientation
        final = (p.x, p.y, quaternion_to_yaw(q.x, q.y, q.z, q.w)) if res.final_pose.header.stamp.sec else None
        return NavigateReply(bool(res.success), res.message, status, target, final, feedback,
                             time.perf_counter() - t0)

    def close(self) -> None:
        self._navigate.destroy()
        self._executor.shutdown()
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> "Llm3dClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
