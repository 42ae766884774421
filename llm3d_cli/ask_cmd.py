"""`llm3d ask`: ask the 3D-LLM about the scene.

Without --map it asks the running stack (the `llm3d_reasoner` node's `ask` service, a dialog turn;
--session continues a conversation). With --map it loads the model and a saved map in this
process (caption, qa, plan, ground, navigate; no ROS needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llm3d_cli.registry import command


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", nargs="?", default="", help="the instruction (may be empty for caption)")
    p.add_argument("--map", type=Path, default=None,
                   help="map folder saved by `llm3d map` or the mapper node: answer offline in this process "
                        "(default: ask the running stack)")
    p.add_argument("--session", default="", help="running stack: continue this dialog session")
    p.add_argument("--namespace", default="", help="running stack: namespace of the reasoner's services")
    p.add_argument("--server-timeout", type=float, default=10.0, help="running stack: seconds to wait for it")
    p.add_argument("--timeout", type=float, default=120.0, help="running stack: seconds to wait for the answer")
    p.add_argument("--ckpt", type=Path, default=None,
                   help="checkpoint folder (default: an untrained model from the config; answers are then arbitrary)")
    p.add_argument("--task", default="qa", choices=["caption", "qa", "plan", "ground", "navigate", "dialog"])
    p.add_argument("--config", type=Path, default=None, help="YAML parameter file (model from llm3d_reasoner.model)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")


@command("ask", "ask the 3D-LLM about the scene (running stack, or a saved map with --map)", _add_args)
def run(args: argparse.Namespace) -> int:
    if args.map is None:
        return _ask_stack(args)
    return _ask_offline(args)


def _ask_stack(args: argparse.Namespace) -> int:
    from llm3d_cli.stack import report, with_client

    if args.task not in ("qa", "dialog") or args.ckpt or args.config or args.device:
        print("error: --task other than qa/dialog, --ckpt, --config and --device need --map (offline); the running "
              "stack answers with its own model (use `llm3d ground|plan|navigate` for the other tasks)",
              file=sys.stderr)
        return 2

    def call(client) -> int:
        reply = client.ask(args.question, args.session)
        return report(args, reply.success, reply.message,
                      {"answer": reply.answer, "session_id": reply.session_id, "seconds": round(reply.seconds, 3)},
                      f"{reply.answer}\n(session {reply.session_id}; {reply.seconds:.2f} s)")

    return with_client(args, call)


def _ask_offline(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llm3d_core.mapping.mapper import MapFileError
    from llm3d_core.model.llm import LlmLoadError
    from llm3d_core.model.location_tokens import LocationDecodeError
    from llm3d_core.model.modeling_llm3d import CheckpointError, InputTooLongError, Llm3dModel
    from llm3d_core.model.scene import EmptySceneError, load_map_scene

    try:
        if args.ckpt:
            model = Llm3dModel.from_pretrained(args.ckpt, device=args.device,
                                               overrides={"device": args.device} if args.device else None)
        else:
            from llm3d_core.model.train import load_train_config

            cfg = load_train_config(args.config, {}).model
            print("warning: no --ckpt given; the scene encoder is untrained", file=sys.stderr)
            model = Llm3dModel.build(cfg, args.device)
        model.eval()
        scene = load_map_scene(args.map, model.config.num_points, model.config.seed)
        answer = model.session(scene, str(args.map)).ask(args.question, args.task)
    except (CheckpointError, EmptySceneError, InputTooLongError, LocationDecodeError, MapFileError, LlmLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = {"task": answer.task, "answer": answer.text, "seconds": round(answer.seconds, 3), "tokens": answer.tokens}
    if answer.box is not None:
        result.update(label=answer.label, box_min=answer.box[:3].round(3).tolist(), box_max=answer.box[3:].round(3).tolist())
    if answer.point is not None:
        result["goal"] = answer.point.round(3).tolist()
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(answer.text)
        if answer.box is not None:
            print(f"box (map frame): min {result['box_min']} max {result['box_max']}")
        if answer.point is not None:
            print(f"goal (map frame): {result['goal']}")
        print(f"({answer.tokens} tokens, {answer.seconds:.2f} s)", file=sys.stderr)
    return 0
