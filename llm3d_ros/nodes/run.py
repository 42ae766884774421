"""The one way our nodes run: init, spin until SIGINT/SIGTERM, clean shutdown.

Import it after `llm3d_ros.env.apply_ros_environment()` has run (each node module does so first).

Each node's `main()` only says how to build the node, how many executor threads it needs and which
start-up errors are the user's (exit code 2 with a message instead of a traceback).
"""

from __future__ import annotations

import faulthandler
import signal
import sys
from collections.abc import Callable
from typing import Protocol

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor


class StartableNode(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def destroy_node(self) -> None: ...


def run_node(make_node: Callable[[], StartableNode], node_name: str, argv: list[str] | None = None,
             threads: int = 1, fatal: tuple[type[BaseException], ...] = (),
             describe: Callable[[BaseException], str] = lambda err: f"invalid parameters: {err}") -> int:
    """Builds, starts and spins a node; returns 0, or 2 after printing `describe(err)` for a `fatal` error.

    `threads` sizes the executor unless the node has an `executor_threads` attribute."""
    # A crash inside a native library (rclpy, Open3D, torch, numba) then prints every thread's Python
    # stack to stderr, which the launcher's log keeps, instead of a bare exit code -11.
    faulthandler.enable()
    # A node that hangs on shutdown is sent SIGUSR1 before SIGKILL (llm3d bringup): every thread's
    # stack then shows where it waits.
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    rclpy.init(args=argv if argv is not None else sys.argv)
    node: StartableNode | None = None
    executor = None
    rc = 0
    try:
        node = make_node()
        threads = getattr(node, "executor_threads", threads)  # a node may size its executor from its config
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        node.start()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except fatal as err:
        print(f"{node_name}: {describe(err)}", file=sys.stderr, flush=True)
        rc = 2
    finally:
        # Order matters (an executor still spinning at exit aborts with rc 134): stop the node's own
        # thread, shut the executor down, destroy the node, then the context.
        if node is not None:
            node.stop()
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return rc
