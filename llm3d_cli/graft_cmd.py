"""`llm3d graft`: a checkpoint's heads on another checkpoint's retrained trunk (LoRA, scene encoder)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llm3d_cli.registry import command
from llm3d_cli.usage import UsageError, check_checkpoint


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--heads", type=Path, required=True,
                   help="checkpoint whose config, object pointer, mask head and absence head (with their "
                        "calibration files) are kept, e.g. checkpoints/llm3d-objects")
    p.add_argument("--trunk", type=Path, required=True,
                   help="checkpoint trained from it with the heads left out (train.init_skip), whose LoRA, "
                        "scene encoder and location tokens replace the heads checkpoint's")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write (must not hold one yet)")


@command("graft", "combine one checkpoint's heads with another's retrained LoRA and scene encoder", _add_args)
def run(args: argparse.Namespace) -> int:
    check_checkpoint(args.heads, "--heads")
    check_checkpoint(args.trunk, "--trunk")
    if (args.out / "config.json").exists():
        raise UsageError(f"argument --out: {args.out} already holds a checkpoint")
    from llm3d_core.model.checkpoint_io import graft_checkpoint

    print(json.dumps({"out": str(args.out), **graft_checkpoint(args.heads, args.trunk, args.out)}, indent=1))
    return 0
