"""Shared by the CLI commands that talk to a running stack (`llm3d ask|ground|plan|navigate`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from llm3d_cli.usage import positive_float


def add_stack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", default="", help="namespace of the reasoner's services (default: none)")
    p.add_argument("--server-timeout", type=positive_float, default=10.0,
                   help="seconds to wait for the reasoner to appear (default 10)")
    p.add_argument("--timeout", type=positive_float, default=120.0, help="seconds to wait for the answer (default 120)")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")


def with_client(args: argparse.Namespace, call: Callable[[Any], int]) -> int:
    """Runs call(client) with an Llm3dClient; exit code 3 when no stack answers, 2 on a refused request."""
    from llm3d_ros.client import Llm3dClient, StackNotRunning

    try:
        client = Llm3dClient(args.namespace, server_timeout_s=args.server_timeout, timeout_s=args.timeout)
    except Exception as err:  # rclpy or the interfaces missing: say so instead of a traceback
        print(f"error: cannot start a ROS 2 client: {err}", file=sys.stderr)
        return 3
    try:
        return call(client)
    except StackNotRunning as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except TimeoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    finally:
        client.close()


def report(args: argparse.Namespace, success: bool, message: str, payload: dict[str, Any], text: str) -> int:
    """Prints a reply (text, or JSON with --json); a refused request goes to stderr with exit code 2."""
    if args.json:
        print(json.dumps({"success": success, "message": message, **payload}, indent=1))
    elif success:
        print(text)
    if not success:
        if not args.json:
            print(f"error: {message}", file=sys.stderr)
        return 2
    return 0
