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
from llm3d_cli.usage import UsageError, check_checkpoint, check_map, non_negative_int, positive_float


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", nargs="?", default="", help="the instruction (may be empty for caption)")
    p.add_argument("--map", type=Path, default=None,
                   help="map folder saved by `llm3d map` or the mapper node: answer offline in this process "
                        "(default: ask the running stack)")
    p.add_argument("--frames", type=Path, default=None,
                   help="ask about one posed RGB-D view of this frame folder (7-Scenes/TUM layout) instead of a map "
                        "(UniVLG: the same model on a single frame, before any map exists)")
    p.add_argument("--index", type=non_negative_int, default=0, help="with --frames: which frame (default 0)")
    p.add_argument("--session", default="", help="running stack: continue this dialog session")
    p.add_argument("--namespace", default="", help="running stack: namespace of the reasoner's services")
    p.add_argument("--server-timeout", type=positive_float, default=10.0, help="running stack: seconds to wait for it")
    p.add_argument("--timeout", type=positive_float, default=120.0, help="running stack: seconds to wait for the answer")
    p.add_argument("--ckpt", type=Path, default=None,
                   help="checkpoint folder (default: an untrained model from the config; answers are then arbitrary)")
    p.add_argument("--task", default="qa", choices=["caption", "qa", "plan", "ground", "navigate", "dialog"])
    p.add_argument("--config", type=Path, default=None, help="YAML parameter file (model from llm3d_reasoner.model)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--mask-head", action="store_true",
                   help="offline --task ground: also the box of UniVLG's mask head (the box of the decoded mask over "
                        "a denser sample of the scene; needs a checkpoint trained with train.stage: mask)")


@command("ask", "ask the 3D-LLM about the scene (running stack, or a saved map with --map)", _add_args)
def run(args: argparse.Namespace) -> int:
    if args.map is not None and args.frames is not None:
        raise UsageError("give --map (a scene) or --frames (one view), not both")
    if not args.question.strip() and args.task != "caption":
        raise UsageError(f"the question is empty (only --task caption takes none; this is --task {args.task})")
    if args.map is None and args.frames is None:
        return _ask_stack(args)
    return _ask_offline(args)


def _ask_stack(args: argparse.Namespace) -> int:
    from llm3d_cli.stack import report, with_client

    if args.task not in ("qa", "dialog") or args.ckpt or args.config or args.device:
        raise UsageError("--task other than qa/dialog, --ckpt, --config and --device need --map (offline); the "
                         "running stack answers with its own model (use `llm3d ground|plan|navigate` for the other "
                         "tasks)")

    def call(client) -> int:
        reply = client.ask(args.question, args.session)
        return report(args, reply.success, reply.message,
                      {"answer": reply.answer, "session_id": reply.session_id, "seconds": round(reply.seconds, 3)},
                      f"{reply.answer}\n(session {reply.session_id}; {reply.seconds:.2f} s)")

    return with_client(args, call)


def _ask_offline(args: argparse.Namespace) -> int:
    import os

    # Inputs first, then torch and the model (seconds): a wrong path fails at once. A bad map, frame or
    # question found later (MapFileError, FrameError, InputTooLongError...) is reported by llm3d_cli.main, exit 2.
    check_map(args.map)
    if args.frames is not None:
        from llm3d_core.data.frames import open_frame_folder

        frames = open_frame_folder(args.frames)
        if args.index >= len(frames):
            raise UsageError(f"argument --index: {args.index} is outside the {len(frames)} frames of {args.frames}")
    check_checkpoint(args.ckpt)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llm3d_core.model.modeling_llm3d import Llm3dModel
    from llm3d_core.model.scene import load_map_scene

    from llm3d_core.assets import resolve_checkpoint

    ckpt = resolve_checkpoint(args.ckpt)
    if ckpt:
        model = Llm3dModel.from_pretrained(ckpt, device=args.device,
                                           overrides={"device": args.device} if args.device else None)
    else:
        from llm3d_core.training.train import load_train_config

        cfg = load_train_config(args.config, {}).model
        print("warning: no --ckpt given and no shipped checkpoint; the scene encoder is untrained", file=sys.stderr)
        model = Llm3dModel.build(cfg, args.device)
    model.eval()
    if args.mask_head and (args.task != "ground" or model.mask_head is None):
        raise UsageError("--mask-head needs --task ground and a checkpoint with a mask head "
                         f"(this one's grounding_head is {model.config.grounding_head!r})")
    if model.config.scene_input == "frames2d":
        scene, frame_name = _frames2d_scene(args, model), "map"
    elif args.frames is not None:
        scene, frame_name = _frame_scene(args, model)
    else:
        scene, frame_name = load_map_scene(args.map, model.config.num_points, model.config.seed), "map"
    answer = model.session(scene, str(args.map or args.frames)).ask(args.question, args.task)
    found = None
    if args.mask_head:
        m = model.config.mask_head
        dense = _frame_scene(args, model, m.num_points)[0] if args.frames is not None else load_map_scene(
            args.map, m.num_points, model.config.seed, object_points=m.object_points)
        found = model.ground_mask(dense, args.question, answer.object_logits)
    result = {"task": answer.task, "answer": answer.text, "seconds": round(answer.seconds, 3), "tokens": answer.tokens,
              "frame": frame_name}
    if answer.box is not None:
        result.update(label=answer.label, box_min=answer.box[:3].round(3).tolist(), box_max=answer.box[3:].round(3).tolist())
    if answer.point is not None:
        result["goal"] = answer.point.round(3).tolist()
    if found is not None:
        result["mask_head"] = {"score": round(found.score, 4), "points": int(found.mask.sum()),
                               **({"box_min": found.box[:3].round(3).tolist(), "box_max": found.box[3:].round(3).tolist()}
                                  if found.box is not None else {"box_min": None, "box_max": None})}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(answer.text)
        if answer.box is not None:
            print(f"box ({frame_name} frame): min {result['box_min']} max {result['box_max']}")
        if answer.point is not None:
            print(f"goal ({frame_name} frame): {result['goal']}")
        if found is not None:
            m = result["mask_head"]
            print(f"mask head box ({frame_name} frame): min {m['box_min']} max {m['box_max']} "
                  f"({m['points']} points, score {m['score']:.2f})" if found.box is not None
                  else "mask head: no query masks any point")
        print(f"({answer.tokens} tokens, {answer.seconds:.2f} s)", file=sys.stderr)
    return 0


def _frames2d_scene(args: argparse.Namespace, model):
    """The 2D baseline's input (model/frames2d.py): the saved map's keyframes, not its fused points."""
    from llm3d_core.model.frames2d import Frames2dSceneBuilder
    from llm3d_core.model.scene import load_map_scene

    if args.map is None:
        raise ValueError("this checkpoint is the 2D baseline (scene_input frames2d): it reads a saved map's "
                         "keyframes, give --map")
    cfg = model.config
    bounds = load_map_scene(args.map, 1, cfg.seed).bounds.numpy()  # (2, 3): the location frame
    return Frames2dSceneBuilder(cfg.frame_grid, cfg.num_points, cfg.max_objects, cfg.seed).scene_of_map(args.map, bounds)


def _frame_scene(args: argparse.Namespace, model, num_points: int = 0):
    """One view lifted to 3D in camera coordinates with the mapper's encoder (UniVLG sec. 3);
    num_points: how many points to sample (0: the scene encoder's)."""
    import dataclasses

    from llm3d_core.mapping.mapper import load_mapper_config
    from llm3d_core.data.frames import open_frame_folder
    from llm3d_core.encoders import build_image_encoder
    from llm3d_core.model.single_frame import scene_from_mapper_config

    frames = open_frame_folder(args.frames)
    config = load_mapper_config(args.config, args.device)
    encoder = build_image_encoder(dataclasses.replace(config.encoder, device=str(model.device)))
    scene = scene_from_mapper_config(frames[args.index], encoder, config, num_points or model.config.num_points,
                                     "camera", model.config.seed)
    return scene, "camera"
