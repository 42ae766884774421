"""`llm3d bench [what]`: benchmarks printed as Markdown tables beside their references, and JSON.

Plain `llm3d bench` runs `embodied`, the benchmark of the whole job (llm3d_bench.embodied); the
others time one component.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from llm3d_cli.registry import command
from llm3d_cli.usage import (UsageError, check_checkpoint, check_dir, check_map, check_seed, non_negative_int,
                             positive_float, positive_int)

DEFAULT_FRAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "7scenes-redkitchen"


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", default="embodied", choices=["embodied", "mapper", "render", "reasoner", "hallucination", "refusal", "ros",
                                                              "soak"],
                   help="which benchmark (default embodied: held-out episodes, 3D-LLM vs. baselines, one table)")
    p.add_argument("--frames", type=Path, default=None,
                   help="mapper, ros: posed RGB-D frame folder (7-Scenes layout; default shared/data/7scenes-redkitchen, "
                        "mapper: skipped where it is missing)")
    p.add_argument("--limit", type=non_negative_int, default=0, help="mapper: use only the first N frames of each source (0: all)")
    p.add_argument("--voxel", type=positive_float, action="append", help="mapper: voxel size in metres (repeatable; default 0.05 and 0.02)")
    p.add_argument("--no-sim", action="store_true", help="mapper: real frames only")
    p.add_argument("--config", type=Path, default=None, help="YAML parameter file (ros: default launch/llm3d.yaml)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--frames-count", type=positive_int, default=100, help="render: frames per backend")
    p.add_argument("--seed", type=int, default=11000, help="render and mapper: scene seed (default: first test scene)")
    p.add_argument("--ckpt", type=Path, default=None,
                   help="reasoner, embodied, ros: objects-encoder checkpoint (default: the shipped one; "
                   "embodied runs it untrained without one; ros then does not time `ask`)")
    p.add_argument("--ckpt-points", type=Path, default=None,
                   help="embodied: points-encoder (Q-Former) checkpoint (default: checkpoints/llm3d-points)")
    p.add_argument("--ckpt-2d", type=Path, default=None,
                   help="embodied: checkpoint trained on per-frame 2D features, the 2D baseline "
                   "(default: checkpoints/llm3d-frames2d)")
    p.add_argument("--quick", action="store_true",
                   help="embodied: CI-sized smoke run (1 scene, 60 steps, 160x120, 2 questions); "
                   "ros: 3 s of 320x240 frames, fewer calls")
    p.add_argument("--seconds", type=positive_float, default=None,
                   help="ros: seconds of 30 Hz camera per image size (default 10; --quick 3)")
    p.add_argument("--episodes", "--scenes", type=non_negative_int, default=None,
                   help="embodied: held-out test scenes (default 3; --quick 1); hallucination: test scenes mapped "
                   "here (default 2; --quick 1; 0: only --map); refusal: test scenes (default 2; --quick 1; --full 10)")
    p.add_argument("--full", action="store_true",
                   help="embodied: the benchmark at a size that separates systems (10 test scenes; 300 questions, "
                   "150 groundings, 100 navigation goals, 40 absent targets), maps cached in --cache; refusal: its 10 scenes")
    p.add_argument("--cache", type=Path, default=None,
                   help="embodied, refusal: folder of maps built by earlier runs, reused when the scene, simulator and "
                   "mapper config match (default with --full, and for refusal without --quick: runs/bench_cache)")
    p.add_argument("--episodes-file", type=Path, default=None,
                   help="embodied: navigation episodes to run, a habitat-lab ObjectNav episode file (.json or "
                   ".json.gz; every run writes its own as episodes.json.gz)")
    p.add_argument("--min-confidence", type=float, default=0.5,
                   help="hallucination: label score from which a map object is evidence (reasoner.evidence_min_confidence)")
    p.add_argument("--map", type=Path, default=None, help="reasoner: a saved map (default: map the --seed scene); "
                   "hallucination: a saved map to ask about besides the generated scenes (e.g. one `llm3d map "
                   "--frames` built)")
    p.add_argument("--questions", type=non_negative_int, default=None,
                   help="reasoner: QA questions timed (default 20); embodied: per episode (default 8; --quick 2); "
                   "hallucination: count questions per map (default 0: one per generator category; --quick 6)")
    p.add_argument("--minutes", type=positive_float, default=10.0,
                   help="soak: minutes of `llm3d bringup --sim` under load (default 10)")
    p.add_argument("--burst", type=non_negative_int, default=50, help="soak: asks fired at once (default 50)")
    p.add_argument("--burst-period", type=positive_float, default=60.0,
                   help="soak: seconds between bursts (default 60)")
    p.add_argument("--rate", type=positive_float, default=30.0, help="soak: simulated camera rate in Hz (default 30)")
    p.add_argument("--kill", default="llm3d_mapper", choices=["llm3d_mapper", "llm3d_reasoner", "llm3d_sim_bridge", "none"],
                   help="soak: node to kill -9 halfway (default llm3d_mapper; none: no injected crash)")
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="folder for the JSON result")


@command("bench", "run a benchmark and print it beside its references", _add_args)
def run(args: argparse.Namespace) -> int:
    import os

    # Inputs named on the command line exist, before torch loads or a scene is mapped (minutes on a CPU).
    check_dir(args.frames, "--frames", "frame folder")
    args.frames = args.frames or DEFAULT_FRAMES
    if args.what in ("render", "mapper", "reasoner"):
        check_seed(args.seed)
    if not 0 <= args.min_confidence <= 1:
        raise UsageError(f"argument --min-confidence: must be in [0, 1], got {args.min_confidence}")
    for option in ("ckpt", "ckpt_points", "ckpt_2d"):
        check_checkpoint(getattr(args, option), "--" + option.replace("_", "-"))
    check_map(args.map)
    if args.what == "ros":  # before torch: this process only publishes and times; the nodes load torch
        return _ros(args)
    if args.what == "soak":
        return _soak(args)
    import torch

    from llm3d_bench.table import markdown_table

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "render":
        from llm3d_bench.render import render_rows, run_render_bench

        result = run_render_bench(seed=args.seed, frames=args.frames_count)
        result["machine"] = machine
        print(f"\nrender benchmark: scene {result['scene']} ({result['triangles']} triangles), 640x480 RGB + depth + "
              f"instance ids, {machine}\n")
        print(markdown_table(["backend", "frames/s", "ms (median)", ">= target", "notes"], render_rows(result)))
    elif args.what == "embodied":
        return _embodied(args, machine)
    elif args.what == "hallucination":
        return _hallucination(args, machine)
    elif args.what == "refusal":
        return _refusal(args, machine)
    elif args.what == "reasoner":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from llm3d_core.assets import resolve_checkpoint
        from llm3d_core.training.train import load_train_config
        from llm3d_bench.reasoner import (CONTENTION_HEADER, REASONER_HEADER, contention_rows, reasoner_rows,
                                          run_reasoner_bench)

        ckpt = resolve_checkpoint(args.ckpt)
        result = run_reasoner_bench(ckpt, load_train_config(args.config, {}).model, seed=args.seed,
                                    questions=args.questions or 20, map_dir=args.map, device=args.device)
        result["machine"] = machine
        print(f"\nreasoner benchmark: scene {result['scene']}, checkpoint {result['checkpoint']}, device "
              f"{result['device']}, {machine}; model load {result['model_load_seconds']} s\n")
        print(markdown_table(REASONER_HEADER, reasoner_rows(result)))
        if result["thread_contention"]:
            print("\nthe same groundings at torch threads 1 and one per core, on an idle CPU and beside busy "
                  "processes (why the reasoner node runs torch_threads: 1; README, \"CPU threads\")\n")
            print(markdown_table(CONTENTION_HEADER, contention_rows(result)))
    else:
        from llm3d_core.mapping.mapper import load_mapper_config
        from llm3d_bench.mapper import MAPPER_HEADER, mapper_rows, run_mapper_bench

        voxels = tuple(args.voxel) if args.voxel else (0.05, 0.02)
        result = run_mapper_bench(args.frames, load_mapper_config(args.config, args.device), args.limit,
                                  sim_seed=None if args.no_sim else args.seed, voxel_sizes=voxels,
                                  config_path=args.config)
        result["machine"] = machine
        streamed = result["streamed_map_peak_gb"]
        streamed_text = "n/a (no real frames)" if streamed is None else f"{streamed:.2f} GB"
        print(f"\nmapper benchmark, device {result['device']}, {machine}; peak memory of the mapper streaming the "
              f"real sequence in its own process: {streamed_text} (target < 1.5 GB); of this benchmark process, which holds all frames "
              f"and feature maps at once: {result['peak_rss_gb']:.2f} GB\n")
        print(markdown_table(MAPPER_HEADER, mapper_rows(result)))
    (args.out / f"{args.what}.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


def _embodied(args: argparse.Namespace, machine: str) -> int:
    import os
    import sys

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llm3d_core.assets import SHIPPED_FRAMES2D_CHECKPOINT, SHIPPED_POINTS_CHECKPOINT, resolve_checkpoint
    from llm3d_core.training.train import load_train_config
    from llm3d_core.progress import progress_bar
    from llm3d_bench.embodied import EMBODIED_HEADER, EmbodiedConfig, load_systems, run_embodied_bench, write_chart
    from llm3d_bench.embodied_stats import BREAKDOWN_HEADER, COMPARISON_HEADER, breakdown_rows, comparison_rows
    from llm3d_bench.table import markdown_table

    if args.episodes == 0:  # 0 is only meaningful for `bench hallucination --map`
        raise UsageError("argument --episodes: the embodied benchmark needs at least 1 episode")
    if args.quick and args.full:
        raise UsageError("--quick and --full are two sizes of the benchmark: give one")
    overrides = {k: v for k, v in (("episodes", args.episodes), ("questions", args.questions)) if v is not None}
    if args.episodes_file is not None:
        if not args.episodes_file.is_file():
            raise UsageError(f"argument --episodes-file: no file {args.episodes_file}")
        overrides["episodes_file"] = str(args.episodes_file)
    try:
        preset = EmbodiedConfig.quick if args.quick else EmbodiedConfig.full if args.full else EmbodiedConfig
        cfg = preset(**overrides)
    except ValueError as err:
        raise UsageError(str(err)) from None
    ckpt = resolve_checkpoint(args.ckpt)
    if ckpt is None:
        print("warning: no checkpoint (checkpoints/llm3d-objects is missing); the objects row runs an untrained "
              "model, labelled 'untrained'", file=sys.stderr)
    # A checkpoint of the wrong kind for its row (ValueError, CheckpointError): llm3d_cli.main, exit 2.
    systems = load_systems(ckpt, resolve_checkpoint(args.ckpt_points, SHIPPED_POINTS_CHECKPOINT),
                           resolve_checkpoint(args.ckpt_2d, SHIPPED_FRAMES2D_CHECKPOINT),
                           load_train_config(args.config, {}).model, args.device)
    cache = args.cache or (Path("runs") / "bench_cache" if args.full else None)
    result = run_embodied_bench(cfg, systems, args.device, progress=progress_bar,
                                episodes_out=args.out / "episodes.json.gz", cache=cache)
    result["machine"] = machine
    scenes = ", ".join(e["scene"] for e in result["episodes"])
    print(f"\nembodied benchmark: {len(result['episodes'])} held-out test episode(s) ({scenes}), "
          f"{cfg.width}x{cfg.height}, per episode {cfg.questions} questions, {cfg.groundings} groundings, "
          f"{cfg.plans} plans, {cfg.navigations} navigation goals (success within {cfg.success_distance} m); "
          f"{machine}; {result['seconds']} s\n")
    print(markdown_table(EMBODIED_HEADER, result["rows"]))
    many = len(result["episodes"]) > 1
    if many:
        print(f"\nvalue (95 % interval): episode bootstrap, {result['statistics']['draws']} draws over "
              f"{len(result['episodes'])} episodes. Paired comparisons (the same episodes for both rows; "
              "significant: the interval of the difference excludes 0):\n")
        print(markdown_table(COMPARISON_HEADER, comparison_rows(result)))
        print("\nbreakdowns:\n")
        print(markdown_table(BREAKDOWN_HEADER, breakdown_rows(result)))
    else:
        print("\none episode: no intervals (they resample episodes; run --episodes 2 or more, or --full)")
    print("\nn/a: the system cannot do the task; –: no checkpoint for the row. JSON and chart in "
          f"{args.out.resolve()}/embodied.json, embodied.png")
    (args.out / "embodied.json").write_text(json.dumps(result, indent=1, default=str))
    write_chart(args.out / "embodied.png", result)
    return 0


def _hallucination(args: argparse.Namespace, machine: str) -> int:
    """`llm3d bench hallucination` (llm3d_bench.hallucination): CHAIR_i and count agreement, map-evidence layer off/on."""
    import os
    import sys

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llm3d_core.assets import resolve_checkpoint
    from llm3d_core.training.train import load_train_config
    from llm3d_bench.hallucination import HALLUCINATION_HEADER, hallucination_rows, run_hallucination_bench
    from llm3d_bench.table import markdown_table
    from sim.scenes import seeds

    episodes = args.episodes if args.episodes is not None else (1 if args.quick else 2)
    if episodes == 0 and args.map is None:
        raise UsageError("nothing to ask about: give --map DIR or --episodes >= 1")
    result = run_hallucination_bench(resolve_checkpoint(args.ckpt), load_train_config(args.config, {}).model,
                                     [args.map] if args.map else [], list(seeds("test", episodes)),
                                     device=args.device, min_confidence=args.min_confidence,
                                     counts=args.questions if args.questions is not None else (6 if args.quick else 0),
                                     progress=lambda line: print(f"llm3d bench hallucination: {line}", file=sys.stderr,
                                                                 flush=True))
    result["machine"] = machine
    return _report(args.out / "hallucination.json", result,
                   f"hallucination benchmark: checkpoint {result['checkpoint']}, label confidence >= "
                   f"{result['min_confidence']}, {machine}; {result['seconds']} s",
                   markdown_table(HALLUCINATION_HEADER, hallucination_rows(result)),
                   "CHAIR_i: categories claimed that the reference does not hold / categories claimed (a count > 0 "
                   "claims its category); count agrees: count answers equal to the reference's count.")


def _report(path: Path, result: dict, title: str, table: str, legend: str) -> int:
    """Prints a benchmark's title, table and legend, and writes its JSON (every answer) to `path`."""
    print(f"\n{title}\n")
    print(table)
    print(f"\n{legend} JSON with every answer in {path.resolve()}")
    path.write_text(json.dumps(result, indent=1, default=str))
    return 0


def _refusal(args: argparse.Namespace, machine: str) -> int:
    """`llm3d bench refusal` (llm3d_bench.refusal): absent targets refused and present ones kept, map checks off/on."""
    import os
    import sys

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llm3d_core.assets import resolve_checkpoint
    from llm3d_core.training.train import load_train_config
    from llm3d_core.reasoner import load_model
    from llm3d_bench.embodied import EmbodiedConfig
    from llm3d_bench.refusal import REFUSAL_HEADER, refusal_rows, run_refusal_bench
    from llm3d_bench.table import markdown_table

    if args.quick and args.full:
        raise UsageError("--quick and --full are two sizes of the benchmark: give one")
    if args.episodes == 0:
        raise UsageError("argument --episodes: the refusal benchmark needs at least 1 scene")
    preset = EmbodiedConfig.quick if args.quick else EmbodiedConfig.full
    cfg = preset(episodes=args.episodes or (1 if args.quick else 10 if args.full else 2))
    ckpt = resolve_checkpoint(args.ckpt)
    if ckpt is None:
        raise UsageError("no checkpoint: the refusal benchmark measures a trained absence head (give --ckpt)")
    model_config = load_train_config(args.config, {}).model
    model = load_model(ckpt, model_config, args.device or model_config.device,
                       overrides={"device": args.device} if args.device else None)
    cache = args.cache or (None if args.quick else Path("runs") / "bench_cache")
    result = run_refusal_bench(cfg, model, cache, args.device,
                               progress=lambda line: print(f"llm3d bench refusal: {line}", file=sys.stderr, flush=True))
    result.update(machine=machine, checkpoint=str(ckpt))
    return _report(args.out / "refusal.json", result,
                   f"refusal benchmark: {cfg.episodes} held-out test scene(s), checkpoint {ckpt}, grounding 'model', "
                   f"{machine}; {result['seconds']} s", markdown_table(REFUSAL_HEADER, refusal_rows(result)),
                   "refused: share of the requests answered 'nothing in the map matches' (absent: the more the "
                   "better; present: the share refused is in brackets beside Acc@0.25, the share grounded with "
                   "IoU >= 0.25).")


def _ros(args: argparse.Namespace) -> int:
    """`llm3d bench ros` (llm3d_bench.ros_pipeline): camera-to-map latency and drops under 30 Hz, service round trips."""
    import os
    import sys

    from llm3d_core.config import DEFAULT_CONFIG

    params = (args.config or DEFAULT_CONFIG).expanduser().resolve()
    if not params.is_file():
        raise UsageError(f"argument --config: parameter file not found: {params}")
    from llm3d_core.assets import resolve_checkpoint
    from llm3d_bench.ros_pipeline import ROS_HEADER, RosBenchConfig, RosBenchError, ros_rows, run_ros_bench
    from llm3d_bench.mapper import TARGETS
    from llm3d_bench.table import markdown_table

    overrides: dict = {"checkpoint": resolve_checkpoint(args.ckpt), "device": args.device or ""}
    if args.seconds is not None:
        overrides["seconds"] = args.seconds
    # A bad option or frame folder (ValueError, FileNotFoundError) is the user's: llm3d_cli.main, exit 2.
    cfg = (RosBenchConfig.quick(args.frames, params, **overrides) if args.quick
           else RosBenchConfig(frames_dir=args.frames, params_file=params, **overrides))
    try:
        result = run_ros_bench(cfg, log=lambda line: print(f"llm3d bench ros: {line}", file=sys.stderr, flush=True))
    except RosBenchError as err:  # the nodes failed: their output is in the message
        print(f"llm3d bench ros: {err}", file=sys.stderr)
        return 1
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    result["machine"] = machine
    print(f"\nros benchmark: llm3d_mapper (own process) with {params}, {cfg.rate_hz:g} Hz camera, {cfg.seconds:g} s per size, "
          f"ROS_DOMAIN_ID {result['ros_domain_id']}, {machine}; mapper up after {result['mapper_start_s']} s\n")
    print(markdown_table(ROS_HEADER, ros_rows(result, TARGETS["real_peak_gb"])))
    print("\nlatency = node clock when the frame's fusion returned - the image stamp (its publish time); sampled "
          f"from the mapper's status. JSON in {args.out.resolve()}/ros.json")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ros.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


def _soak(args: argparse.Namespace) -> int:
    """`llm3d bench soak` (llm3d_ros.soak): the stack for --minutes under bursts of asks, bad input and a kill -9."""
    import sys

    from llm3d_core.assets import resolve_checkpoint
    from llm3d_ros.soak import SoakConfig, plot_soak, run_soak, soak_rows
    from llm3d_bench.table import markdown_table

    if args.config is not None and not args.config.is_file():
        raise UsageError(f"argument --config: parameter file not found: {args.config}")
    cfg = SoakConfig(minutes=args.minutes, rate_hz=args.rate, burst=args.burst, burst_period_s=args.burst_period,
                     kill_node="" if args.kill == "none" else args.kill, device=args.device or "cpu",
                     checkpoint=str(resolve_checkpoint(args.ckpt) or ""), params_file=args.config)
    try:
        result = run_soak(cfg, log=lambda line: print(f"llm3d bench {line}", file=sys.stderr, flush=True))
    except RuntimeError as err:  # the stack did not come up: its output is in the message
        print(f"llm3d bench soak: {err}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=1, default=str))
    png = plot_soak(result, args.out / "soak.png")
    print(f"\nsoak: llm3d bringup --sim for {cfg.minutes:g} min, simulator at {cfg.rate_hz:g} Hz, {cfg.burst} asks at "
          f"once every {cfg.burst_period_s:g} s, bad sensor input every {cfg.bad_period_s:g} s, kill -9 "
          f"{cfg.kill_node or 'none'} at {cfg.kill_at:.0%}; {platform.processor() or platform.machine()}\n")
    print(markdown_table(("measure", "result", "target", "meets"), soak_rows(result)))
    print(f"\nJSON in {args.out.resolve()}/soak.json; memory curves in {png.resolve()}")
    return 0 if result["requests"]["lost"] == 0 and not result["crashes"] else 1
