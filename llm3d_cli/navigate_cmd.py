"""`llm3d navigate "…"`: drive the robot to what an instruction names, through the running reasoner."""

from __future__ import annotations

import argparse
import sys

from llm3d_cli.registry import command
from llm3d_cli.stack import add_stack_args, report, with_client
from llm3d_cli.usage import non_negative_float, text


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("instruction", type=text, help='e.g. "go to the sofa"')
    p.add_argument("--success-distance", type=non_negative_float, default=0.0,
                   help="metres from the target that count as arrived (0: the reasoner's default)")
    add_stack_args(p)
    p.set_defaults(timeout=300.0)


@command("navigate", "go to what an instruction names (running stack; Ctrl-C cancels)", _add_args)
def run(args: argparse.Namespace) -> int:

    def on_feedback(distance: float, state: str) -> None:
        if not args.json:
            print(f"  {state}: {distance:.2f} m to the goal", file=sys.stderr, flush=True)

    def call(client) -> int:
        reply = client.navigate(args.instruction, args.success_distance, on_feedback=on_feedback)
        target = None if reply.target is None else {
            "id": reply.target.id, "label": reply.target.label, "box_min": reply.target.box[:3].round(3).tolist(),
            "box_max": reply.target.box[3:].round(3).tolist()}
        payload = {"status": reply.status, "target": target,
                   "final_pose": None if reply.final_pose is None else [round(v, 3) for v in reply.final_pose],
                   "seconds": round(reply.seconds, 2)}
        return report(args, reply.success, reply.message, payload, f"{reply.status}: {reply.message}")

    return with_client(args, call)
