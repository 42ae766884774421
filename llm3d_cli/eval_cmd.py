"""`llm3d eval`: answer metrics, grounding accuracy, plan and navigation scores, latency."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llm3d_cli.registry import command
from llm3d_cli.usage import UsageError, check_checkpoint, non_negative_int

TASKS = ("caption", "qa", "ground", "plan", "navigate", "dialog")  # llm3d_core.model.configuration_llm3d.TASKS


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="folder with <split>.jsonl and maps/")
    p.add_argument("--split", default="val", help="val | test (any DIR/<split>.jsonl)")
    p.add_argument("--ckpt", type=Path, required=True, help="checkpoint folder (model.safetensors + config.json)")
    p.add_argument("--out", type=Path, default=None, help="metrics JSON (default: CKPT/eval_<split>.json)")
    p.add_argument("--limit", type=non_negative_int, default=0, help="evaluate only the first N records (0: all)")
    p.add_argument("--task", action="append", default=None, choices=TASKS, help="only these tasks (repeatable)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--llm-dtype", default=None, choices=("float32", "bfloat16", "float16", "auto"),
                   help="the frozen LLM's weights in memory (default: the checkpoint's, float32)")
    p.add_argument("--skip-missing-scenes", action="store_true", help="evaluate only records whose scene map exists")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (starts a Java process)")
    p.add_argument("--heldout-phrasing", action="store_true", help="also evaluate DIR/<split>_heldout.jsonl (the same "
                   "records in a grammar training never saw: `llm3d data generate --phrasing heldout --name "
                   "<split>_heldout`) and print the two side by side")


@command("eval", "evaluate a 3D-LLM checkpoint on a data split; prints a table, writes JSON", _add_args)
def run(args: argparse.Namespace) -> int:
    import os

    # Before torch and the model load (seconds): the split file and the checkpoint exist.
    if not (args.data / f"{args.split}.jsonl").is_file():
        raise UsageError(f"no data file {args.data / (args.split + '.jsonl')} (--data DIR holds <--split>.jsonl; "
                         "`llm3d data generate` writes it)")
    heldout = f"{args.split}_heldout"
    if args.heldout_phrasing and not (args.data / f"{heldout}.jsonl").is_file():
        raise UsageError(f"no data file {args.data / (heldout + '.jsonl')} (`llm3d data generate --split ... "
                         f"--phrasing heldout --name {heldout}` writes it)")
    check_checkpoint(args.ckpt)
    out = args.out or args.ckpt / f"eval_{args.split}.json"
    try:  # before minutes of evaluation, not after them
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"argument --out: cannot write {out}: {err.strerror or err}") from None
    if out.is_dir():
        raise UsageError(f"argument --out: {out} is a folder; give the metrics JSON file to write")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llm3d_core.model.evaluate import evaluate, format_table
    from llm3d_core.model.modeling_llm3d import Llm3dModel

    overrides = {**({"device": args.device} if args.device else {}),
                 **({"llm_dtype": args.llm_dtype} if args.llm_dtype else {})} or None
    model = Llm3dModel.from_pretrained(args.ckpt, device=args.device, overrides=overrides)
    metrics = evaluate(model, args.data, args.split, args.limit, args.task, out.with_suffix(".predictions.jsonl"),
                       meteor=not args.no_meteor, skip_missing_scenes=args.skip_missing_scenes)
    out.write_text(json.dumps(metrics, indent=1))
    print(format_table(metrics))
    print(f"metrics written to {out}")
    if args.heldout_phrasing:
        from llm3d_core.model.evaluate import phrasing_table

        out_h = out.with_name(out.stem + "_heldout.json")
        held = evaluate(model, args.data, heldout, args.limit, args.task, out_h.with_suffix(".predictions.jsonl"),
                        meteor=not args.no_meteor, skip_missing_scenes=args.skip_missing_scenes)
        out_h.write_text(json.dumps(held, indent=1))
        print(format_table(held))
        print(phrasing_table(metrics, held))
        print(f"metrics written to {out_h}")
    return 0
