"""Cross-process ROS 2 self-test: a real publish/subscribe and service round trip over DDS.

`llm3d doctor` and the tests start `python -m llm3d_ros.selftest echo ...` as a second
process, which republishes std_msgs/String messages and answers llm3d_interfaces/Ask, then
check from this process that both directions work. Nothing is simulated: two processes,
two DDS participants, the real RMW.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

from llm3d_ros.env import apply_ros_environment


def echo_answer(question: str) -> str:
    """What the echo server answers to an Ask question (callers check it)."""
    return f"echo: {question[::-1]}"


def run_echo_server(topic_in: str, topic_out: str, service: str, lifetime_s: float) -> int:
    """Republishes `topic_in` on `topic_out` and serves Ask on `service` until stopped."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from std_msgs.msg import String

    from llm3d_interfaces.srv import Ask

    rclpy.init()
    node = rclpy.create_node(f"llm3d_selftest_echo_{os.getpid()}")
    pub = node.create_publisher(String, topic_out, 10)
    node.create_subscription(String, topic_in, pub.publish, 10)

    def on_ask(request: Ask.Request, response: Ask.Response) -> Ask.Response:
        response.answer = echo_answer(request.question)
        response.session_id = request.session_id or "selftest"
        response.success = True
        return response

    node.create_service(Ask, service, on_ask)
    deadline = time.monotonic() + lifetime_s
    print("READY", flush=True)
    try:
        while rclpy.ok() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


@dataclass
class RoundTripResult:
    ok: bool
    detail: str
    pubsub_ms: float = float("nan")  # median publish -> echo -> receive time
    service_ms: float = float("nan")


def start_echo_process(topic_in: str, topic_out: str, service: str, lifetime_s: float = 60.0) -> subprocess.Popen:
    """Starts the echo server in a new process, with this process's ROS environment."""
    cmd = [sys.executable, "-m", "llm3d_ros.selftest", "echo", "--in", topic_in, "--out", topic_out,
           "--service", service, "--lifetime", str(lifetime_s)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """SIGINT (a clean rclpy shutdown), then SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def cross_process_roundtrip(messages: int = 5, timeout_s: float = 20.0) -> RoundTripResult:
    """Publishes `messages` strings to a second process and calls its Ask service."""
    import rclpy
    from std_msgs.msg import String

    from llm3d_interfaces.srv import Ask

    tag = uuid.uuid4().hex[:8]
    topic_in, topic_out, service = f"llm3d_selftest/ping_{tag}", f"llm3d_selftest/pong_{tag}", f"llm3d_selftest/ask_{tag}"
    proc = start_echo_process(topic_in, topic_out, service, lifetime_s=timeout_s + 30.0)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f"llm3d_selftest_{tag}", context=context)
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received: dict[str, float] = {}
    node.create_subscription(String, topic_out, lambda m: received.setdefault(m.data, time.perf_counter()), 10)
    pub = node.create_publisher(String, topic_in, 10)
    client = node.create_client(Ask, service)
    deadline = time.monotonic() + timeout_s

    def spin_until(cond) -> bool:
        while not cond():
            if time.monotonic() > deadline or proc.poll() is not None:
                return False
            executor.spin_once(timeout_sec=0.05)
        return True

    try:
        # Discovery takes 0.05-3 s: wait on the graph, never on a fixed sleep.
        if not spin_until(lambda: pub.get_subscription_count() > 0 and node.count_publishers(topic_out) > 0):
            return RoundTripResult(False, _why(proc, "the echo process was not discovered"))
        # One warm-up message first: the first sample waits for endpoint matching to settle,
        # which is discovery time, not transport latency. It is sent again every 0.25 s until it
        # comes back: the graph shows the echo's publisher before that writer has matched our
        # reader, and a volatile sample the echo republishes in that gap is lost (on a loaded
        # 2-core CI machine a single warm-up once never came back within 30 s).
        warmup = f"warmup {tag}"
        resend = [0.0]

        def warmed_up() -> bool:
            if warmup in received:
                return True
            if time.monotonic() >= resend[0]:
                pub.publish(String(data=warmup))
                resend[0] = time.monotonic() + 0.25
            return False

        if not spin_until(warmed_up):
            return RoundTripResult(False, _why(proc, "the warm-up message did not come back"))
        sent: dict[str, float] = {}
        for i in range(messages):
            payload = f"ping {i} {tag}"
            sent[payload] = time.perf_counter()
            pub.publish(String(data=payload))
        if not spin_until(lambda: all(p in received for p in sent)):
            back = sum(p in received for p in sent)
            return RoundTripResult(False, _why(proc, f"{back}/{messages} messages came back"))
        pubsub = sorted(1e3 * (received[p] - t) for p, t in sent.items())
        if not spin_until(client.service_is_ready):
            return RoundTripResult(False, _why(proc, "the Ask service did not appear"))
        question = f"where is the mug {tag}?"
        t0 = time.perf_counter()
        future = client.call_async(Ask.Request(question=question, session_id=""))
        if not spin_until(future.done):
            return RoundTripResult(False, _why(proc, "the Ask call timed out"))
        service_ms = 1e3 * (time.perf_counter() - t0)
        response = future.result()
        if not response.success or response.answer != echo_answer(question):
            return RoundTripResult(False, f"wrong Ask response: {response}")
        return RoundTripResult(True, f"{messages}/{messages} messages, Ask answered", pubsub[len(pubsub) // 2], service_ms)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        stop_process(proc)


def _why(proc: subprocess.Popen, what: str) -> str:
    if proc.poll() is not None:
        err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()[-3:]
        return f"{what}; echo process exited with {proc.returncode}: {' | '.join(err)}"
    return what


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm3d_ros.selftest")
    sub = parser.add_subparsers(dest="cmd", required=True)
    echo = sub.add_parser("echo", help="run the echo server")
    echo.add_argument("--in", dest="topic_in", required=True)
    echo.add_argument("--out", dest="topic_out", required=True)
    echo.add_argument("--service", required=True)
    echo.add_argument("--lifetime", type=float, default=60.0, help="exit after this many seconds")
    sub.add_parser("roundtrip", help="run the round trip against a fresh echo process")
    args = parser.parse_args(argv)
    apply_ros_environment()
    if args.cmd == "echo":
        return run_echo_server(args.topic_in, args.topic_out, args.service, args.lifetime)
    result = cross_process_roundtrip()
    print(result)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
