"""The ROS side of `llm3d bench ros` (llm3d_bench.ros_pipeline): the nodes in their own processes,
started as `llm3d bringup` starts them, the bench's own node (camera feed, the mapper's status,
service clients), and the DDS reference: an image sent to an echo process and back
(`python -m llm3d_bench.ros_harness echo`)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from llm3d_ros.child_process import ChildProcess as BaseChildProcess
from llm3d_ros.env import apply_ros_environment

MAPPER_NODE = "llm3d_mapper"
REASONER_NODE = "llm3d_reasoner"
PING_TOPIC, PONG_TOPIC = "llm3d_bench/ping", "llm3d_bench/pong"

class RosBenchError(RuntimeError):
    """A node died or did not come up in time; the message carries its last output lines."""


# ---------------------------------------------------------------------------- processes
class ChildProcess(BaseChildProcess):
    """A node (or the echo) in its own process; keeps its last output lines for error messages."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        # Own session: a Ctrl-C in the terminal reaches the bench, which stops its children in order.
        super().__init__(cmd, env, name, max_lines=40, new_session=True)

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RosBenchError(f"{self.name} exited with code {self.proc.returncode}; its last output:\n{self.output}")

    def stop(self, timeout_s: float = 15.0) -> int | None:
        return super().stop(timeout_s)


def node_process(name: str, params_file: Path, device: str, env: dict[str, str]) -> ChildProcess:
    """Starts node `name` exactly as `llm3d bringup` would (same module, arguments and remappings)."""
    from llm3d_ros.node_set import NODES, forwarded_parameters, node_command

    spec = next(s for s in NODES if s.name == name)
    cmd = node_command(spec.module, spec.name, [params_file], forwarded_parameters(spec, {"device": device}),
                       spec.remappings)
    return ChildProcess(name, cmd, env)

def stats_ms(seconds: list[float]) -> dict[str, float | int]:
    if not seconds:
        return {"samples": 0}
    ms = np.asarray(seconds) * 1e3
    return {"samples": len(ms), "p50": round(float(np.percentile(ms, 50)), 3),
            "p95": round(float(np.percentile(ms, 95)), 3), "max": round(float(ms.max()), 3)}


# ---------------------------------------------------------------------------- the bench's own node
class BenchNode:
    """This process's ROS side: the camera feed, the mapper's status, service clients."""

    def __init__(self, children: list[ChildProcess]) -> None:
        apply_ros_environment()  # before rclpy loads: RMW, discovery range, Fast DDS profile
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        from llm3d_ros.camera_feed import CameraFeed
        from llm3d_ros.qos import latched_qos, sensor_qos

        self.rclpy, self.Trigger = rclpy, Trigger
        self.children = children  # checked while waiting: a dead node fails the bench at once
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        try:
            self.node = rclpy.create_node("llm3d_bench", context=self.context)
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
        except BaseException:
            rclpy.try_shutdown(context=self.context)
            raise
        # As the mapper subscribes (best effort, small depth): a camera stream, not a reliable queue.
        self.sensor_qos = sensor_qos(2)
        latched = latched_qos(1)
        self.feed = CameraFeed(self.node)
        self.status: dict[str, Any] = {}
        self.on_status: Callable[[dict[str, Any]], None] | None = None
        self.node.create_subscription(String, f"/{MAPPER_NODE}/status", self._on_status, latched)
        self.save = self.node.create_client(Trigger, f"/{MAPPER_NODE}/save_map")
        self.reset = self.node.create_client(Trigger, f"/{MAPPER_NODE}/reset_map")

    def _on_status(self, msg: Any) -> None:
        self.status = json.loads(msg.data)
        if self.on_status is not None:
            self.on_status(self.status)

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def spin_until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            for child in self.children:
                child.check()
            if time.monotonic() > deadline:
                raise RosBenchError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.02)

    def call(self, client: Any, timeout_s: float = 60.0) -> tuple[Any, float]:
        """(response, round-trip seconds) of one Trigger call."""
        self.spin_until(client.service_is_ready, timeout_s, f"service {client.srv_name}")
        t0 = time.perf_counter()
        future = client.call_async(self.Trigger.Request())
        self.spin_until(future.done, timeout_s, f"a response from {client.srv_name}")
        return future.result(), time.perf_counter() - t0

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


# ---------------------------------------------------------------------------- measurements
def dds_reference(bench: BenchNode, image: np.ndarray, pings: int, env: dict[str, str]) -> dict[str, Any]:
    """Round trips of one rgb8 image to an echo process and back, one in flight at a time."""
    from sensor_msgs.msg import Image

    from llm3d_ros.conversions import numpy_to_image

    echo = ChildProcess("echo", [sys.executable, "-m", "llm3d_bench.ros_harness", "echo"], env)
    bench.children.append(echo)
    pub = bench.node.create_publisher(Image, PING_TOPIC, bench.sensor_qos)
    back: list[str] = []
    sub = bench.node.create_subscription(Image, PONG_TOPIC, lambda m: back.append(m.header.frame_id),
                                         bench.sensor_qos)
    msg = numpy_to_image(image, "rgb8")
    seq = 0

    def ping(timeout_s: float) -> float | None:
        nonlocal seq
        seq += 1
        tag = str(seq)
        msg.header.frame_id = tag  # the echo sends the message back unchanged: the tag matches the reply
        t0 = time.perf_counter()
        pub.publish(msg)
        deadline = t0 + timeout_s
        while tag not in back and time.perf_counter() < deadline:
            bench.executor.spin_once(timeout_sec=0.005)
        return time.perf_counter() - t0 if tag in back else None

    try:
        bench.spin_until(lambda: pub.get_subscription_count() > 0 and sub.get_publisher_count() > 0, 60.0,
                         "the echo process")
        # Best effort drops what is sent before both directions have matched: warm up until one returns.
        deadline = time.monotonic() + 30.0
        while ping(0.5) is None:
            if time.monotonic() > deadline:
                raise RosBenchError("no image came back from the echo process within 30 s")
        times = [ping(1.0) for _ in range(pings)]
    finally:
        bench.node.destroy_publisher(pub)
        bench.node.destroy_subscription(sub)
        bench.children.remove(echo)
        echo.stop(5.0)
    ok = [t for t in times if t is not None]
    h, w = image.shape[:2]
    return {"width": w, "height": h, "bytes": int(image.nbytes), "sent": pings, "lost": pings - len(ok),
            "round_trip_ms": stats_ms(ok)}

# ---------------------------------------------------------------------------- echo process
def echo_main() -> int:
    """`python -m llm3d_bench.ros_harness echo`: sends every image on PING_TOPIC back on PONG_TOPIC."""
    apply_ros_environment()
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image

    from llm3d_ros.qos import sensor_qos

    qos = sensor_qos(2)
    rclpy.init()
    node = rclpy.create_node("llm3d_bench_echo")
    try:
        pub = node.create_publisher(Image, PONG_TOPIC, qos)
        node.create_subscription(Image, PING_TOPIC, pub.publish, qos)
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["echo"]:
        sys.exit("usage: python -m llm3d_bench.ros_harness echo   (run `llm3d bench ros` for the benchmark)")
    sys.exit(echo_main())
