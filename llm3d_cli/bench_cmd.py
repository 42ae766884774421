"""`llm3d bench <what>`: benchmarks printed as Markdown tables beside their references, and JSON."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from llm3d_cli.registry import command

DEFAULT_FRAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "7scenes-redkitchen"


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["mapper"], help="which benchmark")
    p.add_argument("--frames", type=Path, default=DEFAULT_FRAMES, help="posed RGB-D frame folder (7-Scenes layout)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N frames (0: all)")
    p.add_argument("--config", type=Path, default=None, help="YAML parameter file")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="folder for the JSON result")


@command("bench", "run a benchmark and print it beside its references", _add_args)
def run(args: argparse.Namespace) -> int:
    import os

    import torch

    from llm3d_cli.map_cmd import load_mapper_config
    from sim.bench.mapper import bench_config, mapper_rows, run_mapper_bench
    from sim.bench.table import markdown_table

    result = run_mapper_bench(args.frames, bench_config(load_mapper_config(args.config, args.device)), args.limit)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    result["machine"] = machine
    print(f"\nmapper benchmark: {result['frames']} frames of {args.frames.name}, device {result['device']}, {machine}\n")
    print(markdown_table(["method", "frames/s", "notes"], mapper_rows(result)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mapper.json").write_text(json.dumps(result, indent=1))
    return 0
