"""Intervals, paired comparisons and breakdowns of `llm3d bench embodied` results (llm3d_bench.stats).

Works on the JSON-ready result of `run_embodied_bench` (its systems' per-record lists), so a saved
embodied.json can be re-analysed without re-running: `add_statistics(json.load(f))`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from llm3d_bench.stats import DEFAULT_DRAWS, Interval, bootstrap_interval, paired_difference

# metric key -> (the system's record list, the per-record value whose mean is the metric)
METRIC_VALUES: dict[str, tuple[str, Callable[[dict], float]]] = {
    "success": ("navigation", lambda r: float(r["success"])),
    "spl": ("navigation", lambda r: float(r["spl"])),
    "distance_to_goal_m": ("navigation", lambda r: float(r["distance_to_goal"])),
    "qa_em@1": ("qa", lambda r: float(r["correct"])),
    "ground_acc@0.25": ("grounding", lambda r: float(r["iou"] >= 0.25)),
    "ground_acc@0.5": ("grounding", lambda r: float(r["iou"] >= 0.5)),
    "plan_step_acc": ("plans", lambda r: float(r["step_accuracy"])),
    "absent_refused": ("absent", lambda r: float(r["refused"])),
}

# The rows of llm3d_bench.embodied.load_systems, by role.
NAMES = {
    "objects": "3D-LLM, objects encoder",
    "generated_tokens": "3D-LLM, objects encoder, generated location tokens",
    "mask": "3D-LLM, objects encoder, UniVLG mask head (same weights)",
    "frame": "3D-LLM, objects encoder, single frame (same weights)",
    "points": "3D-LLM, points encoder (Q-Former)",
    "retrieval": "open-vocabulary retrieval (no LLM)",
    "frames2d": "2D baseline (per-frame features, same LLM)",
}
# The comparisons the benchmark exists to make: (system a, system b, what a - b measures).
PAIRS: tuple[tuple[str, str, str], ...] = (
    (NAMES["objects"], NAMES["frames2d"], "3D map vs 2D frames"),
    (NAMES["objects"], NAMES["frame"], "map vs single frame"),
    (NAMES["objects"], NAMES["points"], "objects vs points encoder"),
    (NAMES["objects"], NAMES["generated_tokens"], "object pointer vs generated location tokens"),
    (NAMES["mask"], NAMES["objects"], "mask head vs location tokens"),
    (NAMES["objects"], NAMES["retrieval"], "3D-LLM vs retrieval"),
)

# Breakdowns: (name, record list, the record's group, metric key whose value is averaged).
BREAKDOWNS: tuple[tuple[str, str, Callable[[dict], str], str], ...] = (
    ("QA EM@1 by question type", "qa", lambda r: r.get("qtype", "?"), "qa_em@1"),
    ("grounding Acc@0.25, unique vs multiple", "grounding",
     lambda r: "unique" if r.get("unique") else "multiple" if r.get("unique") is not None else "?", "ground_acc@0.25"),
    ("navigation success by goal type", "navigation", lambda r: r.get("qtype", "?"), "success"),
)


def _by_episode(records: list[dict], scenes: list[str], value: Callable[[dict], float],
                keep: Callable[[dict], bool] = lambda r: True) -> list[list[float]]:
    """Per-record values grouped by episode, in the episodes' order; non-finite values left out."""
    groups: dict[str, list[float]] = {s: [] for s in scenes}
    for r in records:
        if keep(r) and r.get("scene") in groups:
            v = value(r)
            if math.isfinite(v):
                groups[r["scene"]].append(v)
    return [groups[s] for s in scenes]


def add_statistics(result: dict[str, Any], draws: int = DEFAULT_DRAWS, seed: int = 0) -> dict[str, Any]:
    """Adds to `result`: each ok system's "intervals" (metric -> value/low/high/records) and
    "breakdowns", and the result's "comparisons" (paired differences, significant or not)."""
    scenes = [e["scene"] for e in result["episodes"]]
    ok = {s["name"]: s for s in result["systems"] if s["status"] == "ok"}
    for system in ok.values():
        intervals = {}
        for key, (source, value) in METRIC_VALUES.items():
            iv = bootstrap_interval(_by_episode(system.get(source, []), scenes, value), draws, seed)
            if iv is not None and system["metrics"].get(key) is not None:
                intervals[key] = iv.to_dict()
        system["intervals"] = intervals
        system["breakdowns"] = _breakdowns(system, scenes, draws, seed)
    comparisons = []
    for a, b, what in PAIRS:
        if a not in ok or b not in ok:
            continue
        for key, (source, value) in METRIC_VALUES.items():
            if ok[a]["metrics"].get(key) is None or ok[b]["metrics"].get(key) is None:
                continue
            diff = paired_difference(_by_episode(ok[a].get(source, []), scenes, value),
                                     _by_episode(ok[b].get(source, []), scenes, value), draws, seed)
            if diff is not None:
                comparisons.append({"a": a, "b": b, "what": what, "metric": key, **diff.to_dict(),
                                    "significant": diff.excludes(0.0)})
    result["comparisons"] = comparisons
    result["statistics"] = {"method": "episode (cluster) bootstrap, percentile interval", "draws": draws,
                            "level": 0.95, "episodes": len(scenes), "seed": seed}
    return result


def _breakdowns(system: dict, scenes: list[str], draws: int, seed: int) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for name, source, group_of, key in BREAKDOWNS:
        records = system.get(source, [])
        if not records:
            continue
        value = METRIC_VALUES[key][1]
        groups = sorted({group_of(r) for r in records})
        out[name] = {}
        for g in groups:
            iv = bootstrap_interval(_by_episode(records, scenes, value, lambda r, g=g: group_of(r) == g), draws, seed)
            if iv is not None:
                out[name][g] = iv.to_dict()
    return out


def format_interval(iv: dict | Interval | None, digits: int = 2) -> str:
    """'0.54 (0.47–0.61)', or 'n/a'."""
    if iv is None:
        return "n/a"
    d = iv.to_dict() if isinstance(iv, Interval) else iv
    if not (math.isfinite(d["low"]) and math.isfinite(d["high"])):
        return f"{d['value']:.{digits}f}"
    return f"{d['value']:.{digits}f} ({d['low']:.{digits}f}–{d['high']:.{digits}f})"


COMPARISON_HEADER = ["comparison (a − b)", "metric", "difference (95 % interval)", "significant", "records"]


def comparison_rows(result: dict[str, Any]) -> list[list[str]]:
    return [[c["what"], c["metric"], format_interval(c, 3), "yes" if c["significant"] else "no", str(c["records"])]
            for c in result.get("comparisons", [])]


BREAKDOWN_HEADER = ["system", "breakdown", "group", "value (95 % interval)", "records"]


def breakdown_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for s in result["systems"]:
        for name, groups in s.get("breakdowns", {}).items():
            for g, iv in groups.items():
                rows.append([s["name"], name, g, format_interval(iv), str(iv["records"])])
    return rows
