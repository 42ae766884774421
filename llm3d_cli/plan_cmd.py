"""`llm3d plan "…"`: ordered steps for an instruction, from the running reasoner."""

from __future__ import annotations

import argparse

from llm3d_cli.registry import command
from llm3d_cli.stack import add_stack_args, report, with_client
from llm3d_cli.usage import text


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("instruction", type=text, help='e.g. "make me a cup of coffee"')
    add_stack_args(p)


@command("plan", "decompose an instruction into steps (running stack)", _add_args)
def run(args: argparse.Namespace) -> int:

    def call(client) -> int:
        reply = client.plan(args.instruction)
        text = "\n".join(f"{i + 1}. {step}" for i, step in enumerate(reply.steps))
        return report(args, reply.success, reply.message, {"steps": reply.steps, "seconds": round(reply.seconds, 3)},
                      text)

    return with_client(args, call)
