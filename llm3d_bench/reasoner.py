"""`llm3d bench reasoner`: 3D-LLM answer latency on a mapped held-out scene.

The model-issue target is p50 <= 1.5 s for answers of at most 16 tokens on a 2-core CPU. The
scene prefix is computed once per map and reused by every question of a session (3D-LLM sec. 3:
the 3D features enter as a prefix), so the table reports it apart from the per-answer time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from llm3d_core.model.configuration_llm3d import Llm3dConfig

TARGET_P50_S = 1.5  # answers of <= 16 tokens
SHORT_TOKENS = 16


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_reasoner_bench(checkpoint: Path | None, model_config: "Llm3dConfig", seed: int = 11000, questions: int = 20,
                       map_dir: Path | None = None, device: str | None = None) -> dict[str, Any]:
    """Maps the scene of `seed` (unless `map_dir` is given), then times `questions` QA answers and a
    few grounding answers with one session."""
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.model.scene import scene_from_mapper
    from llm3d_core.reasoner import load_model
    from sim.datagen.generator import generate_records
    from sim.datagen.maps import build_scene_map, map_mapper_config
    from sim.scenes import generate_scene

    scene = generate_scene(seed)
    with tempfile.TemporaryDirectory(prefix="llm3d-bench-") as tmp:
        t0 = time.perf_counter()
        if map_dir is None:  # map the scene here and use that mapper directly (no reload from disk)
            mapper = FeatureFusionMapper(map_mapper_config(device=device))
            build_scene_map(scene, Path(tmp) / "map", mapper=mapper)
        else:
            mapper = FeatureFusionMapper.load(map_dir)
        map_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = load_model(checkpoint, model_config, device or model_config.device,
                           overrides={"device": device} if device else None)
        load_s = time.perf_counter() - t0
        scene_input = scene_from_mapper(mapper, model.config.num_points, model.config.seed)
    records = generate_records(scene)
    qa = [r for r in records if r["task"] == "qa"][:questions]
    ground = [r for r in records if r["task"] == "ground"][: max(3, questions // 4)]
    session = model.session(scene_input, scene.scene_id)
    t0 = time.perf_counter()
    session.ask(qa[0]["question"], "qa", remember=False)  # first answer: computes and keeps the scene prefix
    first_s = time.perf_counter() - t0
    qa_times, qa_tokens, short = [], [], []
    for rec in qa:
        ans = session.ask(rec["question"], "qa", remember=False)
        qa_times.append(ans.seconds)
        qa_tokens.append(ans.tokens)
        if ans.tokens <= SHORT_TOKENS:
            short.append(ans.seconds)
    ground_times = []
    for rec in ground:
        try:
            ground_times.append(session.ask(rec["question"], "ground", remember=False).seconds)
        except ValueError:  # a malformed box is an answer too; its time is not a latency sample
            continue
    contention = thread_contention(session, [r["question"] for r in ground][:6]) if model.device.type == "cpu" else []
    return {"scene": scene.scene_id, "checkpoint": str(checkpoint or "untrained"), "device": str(model.device),
            "map_seconds": round(map_s, 2), "model_load_seconds": round(load_s, 2),
            "first_answer_seconds": round(first_s, 3), "qa_answers": len(qa_times),
            "qa_p50_s": _percentile(qa_times, 50), "qa_p95_s": _percentile(qa_times, 95),
            "qa_mean_tokens": float(np.mean(qa_tokens)) if qa_tokens else 0.0,
            "short_answers": len(short), "short_p50_s": _percentile(short, 50), "short_p95_s": _percentile(short, 95),
            "ground_answers": len(ground_times), "ground_p50_s": _percentile(ground_times, 50),
            "ground_p95_s": _percentile(ground_times, 95), "target_short_p50_s": TARGET_P50_S,
            "thread_contention": contention}


def thread_contention(session: Any, queries: list[str], busy: int | None = None) -> list[dict[str, Any]]:
    """Grounding latency at torch threads 1 and one per core, on an idle CPU and beside `busy`
    (default: one per core) processes that each keep a core busy, as a mapper and a robot's
    other nodes do. Why the reasoner node runs 1 thread by default (README, "CPU threads"): a
    torch op split over every core waits for its slowest thread, and beside busy neighbours one
    of them has always lost its core."""
    import os
    import subprocess
    import sys

    from llm3d_core.device import limited_torch_threads

    cores = os.cpu_count() or 1
    busy = cores if busy is None else busy
    rows = []
    for neighbours in (0, busy):
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(neighbours)]
        try:
            for threads in sorted({1, cores}):
                with limited_torch_threads(threads):
                    seconds = [session.ask(q, "ground", remember=False).seconds for q in queries]
                rows.append({"threads": threads, "busy_processes": neighbours, "answers": len(seconds),
                             "p50_s": _percentile(seconds, 50), "p95_s": _percentile(seconds, 95)})
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    return rows


CONTENTION_HEADER = ["torch threads", "busy neighbour processes", "groundings", "p50 s", "p95 s", "vs. 1 thread"]


def contention_rows(r: dict[str, Any]) -> list[list[object]]:
    rows = r.get("thread_contention") or []
    one = {row["busy_processes"]: row["p50_s"] for row in rows if row["threads"] == 1}
    return [[row["threads"], row["busy_processes"], row["answers"], f"{row['p50_s']:.3f}", f"{row['p95_s']:.3f}",
             f"{row['p50_s'] / one[row['busy_processes']]:.1f}x" if one.get(row["busy_processes"]) else ""]
            for row in rows]


REASONER_HEADER = ["request", "answers", "p50 s", "p95 s", "target", "verdict"]


def reasoner_rows(r: dict[str, Any]) -> list[list[object]]:
    ok = r["short_p50_s"] <= TARGET_P50_S
    return [
        ["QA, answers <= 16 tokens", r["short_answers"], f"{r['short_p50_s']:.3f}", f"{r['short_p95_s']:.3f}",
         f"p50 <= {TARGET_P50_S} s", "met" if ok else "missed"],
        [f"QA, all (mean {r['qa_mean_tokens']:.1f} tokens)", r["qa_answers"], f"{r['qa_p50_s']:.3f}",
         f"{r['qa_p95_s']:.3f}", "", ""],
        ["grounding (label + 6 location tokens)", r["ground_answers"], f"{r['ground_p50_s']:.3f}",
         f"{r['ground_p95_s']:.3f}", "", ""],
        ["first answer (scene prefix computed)", 1, f"{r['first_answer_seconds']:.3f}", "", "", ""],
    ]
