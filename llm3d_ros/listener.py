"""A short-lived node that joins a running stack's graph, for the CLI's probes (`llm3d doctor
--camera`, `llm3d snapshot`): its own rclpy context, in the stack's namespace, with /tf and
/tf_static remapped as `llm3d_ros.node_set` remaps them for the stack's nodes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llm3d_ros.node_set import TF_REMAPPINGS


@contextmanager
def stack_listener(name: str, namespace: str = "") -> Iterator[tuple[Any, Any]]:
    """(node, single-threaded executor) named `<name>_<pid>`; both shut down, with the context, on exit.
    Call with llm3d's ROS environment applied (llm3d_ros.env); namespace as normalize_namespace gives it."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    # In a namespace the stack's TF lives on <ns>/tf; at the root the remapping changes nothing.
    remaps = (["--ros-args", *(arg for src, dst in TF_REMAPPINGS for arg in ("-r", f"{src}:={dst}"))]
              if namespace else None)
    try:
        node = rclpy.create_node(f"{name}_{os.getpid()}", namespace=namespace or "", context=context, cli_args=remaps,
                                 start_parameter_services=False)
    except BaseException:
        rclpy.try_shutdown(context=context)
        raise
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
