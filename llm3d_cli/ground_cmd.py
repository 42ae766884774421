"""`llm3d ground "…"`: the objects a text refers to, from the running reasoner (boxes in the map frame)."""

from __future__ import annotations

import argparse

from llm3d_cli.registry import command
from llm3d_cli.stack import add_stack_args, report, with_client
from llm3d_cli.usage import non_negative_int, text


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", type=text, help='what to find, e.g. "the red mug on the table"')
    p.add_argument("--max-results", type=non_negative_int, default=0, help="0: the reasoner's default")
    add_stack_args(p)


@command("ground", "find the objects a text refers to (running stack)", _add_args)
def run(args: argparse.Namespace) -> int:

    def call(client) -> int:
        reply = client.ground(args.query, args.max_results)
        objects = [{"id": o.id, "label": o.label, "score": round(o.score, 4), "box_min": o.box[:3].round(3).tolist(),
                    "box_max": o.box[3:].round(3).tolist()} for o in reply.objects]
        lines = [f"{i + 1}. #{o['id']} {o['label'] or 'object'} (score {o['score']:.2f}) "
                 f"min {o['box_min']} max {o['box_max']}" for i, o in enumerate(objects)]
        text = "\n".join(lines) or "no object matches"
        return report(args, reply.success, reply.message,
                      {"frame_id": reply.frame_id, "objects": objects, "seconds": round(reply.seconds, 3)},
                      f"{text}\n(frame '{reply.frame_id}', {reply.seconds:.2f} s)")

    return with_client(args, call)
