"""`llm3d bench refusal`: what the reasoner's map checks refuse, and what they cost, on held-out maps.

The absence head (model/absence.py) refuses things the map does not hold; the map checks refuse
what the head lets through: a colour the object does not show (llm3d_core.colors), a support
or proximity relation its box does not stand in (llm3d_core.spatial), a category the object
pointer names it otherwise (llm3d_core.naming) and a kind of thing the model never learned
(llm3d_core.known_things). Each check is meant to
refuse absent targets without refusing present ones the model grounds correctly. On each test
scene's map (the embodied benchmark's, read from its map cache when there) the same reasoner
(grounding 'model', as the embodied benchmark's 3D-LLM row) answers, with the checks off, then
adding the colour, the relation, then the category and unknown-kind checks:

- the embodied benchmark's own requests: its absent navigation targets (must publish no goal),
  its groundings and navigation goals (Acc@0.25 of the grounded target; refusals);
- relational referring records of the data generator (`DatagenConfig(seed=3, absent=24,
  ground=24)`, those stating one relation `spatial.parse_relation` reads), absent and present.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

# (name, ReasonerConfig fields): each check added to the ones before; the last row is the shipped
# reasoner. Typing slips are corrected in every row (input, not a check).
_OFF = {"color_min_share": 0.0, "relation_check": False, "category_check_gap": 0.0, "unknown_target": False}
SETTINGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("checks off", _OFF),
    ("colour", {**_OFF, "color_min_share": 0.1}),
    ("colour + relation", {**_OFF, "color_min_share": 0.1, "relation_check": True}),
    ("colour + relation + category + unknown kinds",
     {"color_min_share": 0.1, "relation_check": True, "category_check_gap": 5.0, "unknown_target": True}))
GROUPS = ("absent", "ground", "navigate", "relational absent", "relational present")


def scene_requests(scene: Any, grid: Any, cfg: Any, seen: set[int] | None) -> dict[str, list[dict]]:
    """The requests of one scene by group (see the module docstring)."""
    from llm3d_core.model.configuration_llm3d import is_absent
    from llm3d_core.spatial import parse_relation
    from llm3d_bench.embodied import absent_requests
    from sim.datagen.generator import DatagenConfig, generate_records
    from llm3d_bench.demo import pick_requests

    picked = pick_requests(scene, grid, cfg.demo_config(), seen)
    records = generate_records(scene, DatagenConfig(seed=3, absent=24, ground=24), grid=grid)
    relational = [r for r in records if r["task"] == "ground" and parse_relation(r["question"]) is not None]
    return {"absent": absent_requests(scene, grid, cfg), "ground": picked["ground"], "navigate": picked["navigate"],
            "relational absent": [r for r in relational if is_absent(r)],
            "relational present": [r for r in relational if not is_absent(r)]}


def answer(reasoner: Any, group: str, rec: dict, start_xy: np.ndarray, success_distance: float,
           truth: np.ndarray | None) -> dict[str, Any]:
    """One request: refused (with the message) or the grounded target's IoU with the true box."""
    from llm3d_core.geometry import box_iou_3d
    from llm3d_core.reasoner import ReasonerError

    try:
        if group in ("absent", "navigate"):
            target, _ = reasoner.navigation_goal(rec["question"], start_xy, success_distance)
        else:
            target = reasoner.ground(rec["question"], 1)[0]
    except ReasonerError as err:
        return {"refused": True, "iou": 0.0, "message": str(err)}
    iou = box_iou_3d(target.box, truth) if truth is not None else 0.0
    return {"refused": False, "iou": round(float(iou), 4), "message": f"{target.id} '{target.label}'"}


def run_refusal_bench(cfg: Any, model: Any, cache: Path | None, device: str | None = None,
                      progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Every SETTINGS row over the scenes of `cfg` (an EmbodiedConfig: scenes, sizes, absent targets)."""
    from llm3d_core.reasoner import Reasoner, ReasonerConfig
    from llm3d_bench.embodied import instance_box
    from llm3d_bench.map_cache import explore_and_map_cached
    from sim.datagen.maps import map_sim_config
    from sim.scenes import seeds
    from sim.simulator import Simulator

    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for seed in seeds("test", cfg.episodes, cfg.scene_start):
        sim = Simulator(map_sim_config(width=cfg.width, height=cfg.height, max_steps=cfg.max_steps))
        mapped, cached = explore_and_map_cached(sim, seed, cfg.demo_config(), cache, device)
        scene, mapper = mapped.scene, mapped.mapper
        seen = {o.instance_id for o in mapper.objects} if cfg.seen_only else None
        requests = scene_requests(scene, sim.grid, cfg, seen)
        start = np.array([sim.agent.x, sim.agent.y])
        progress(f"{scene.scene_id}: map {'from the cache' if cached else 'built'}, "
                 + ", ".join(f"{len(v)} {k}" for k, v in requests.items()))
        for name, fields in SETTINGS:
            config = ReasonerConfig(grounding="model", **fields)
            reasoner = Reasoner(model, config)
            reasoner.set_map(mapper, scene.scene_id)
            for group, recs in requests.items():
                for rec in recs:
                    truth = instance_box(scene, rec) if rec["object_ids"] else None  # absent targets have none
                    out = answer(reasoner, group, rec, start, cfg.success_distance, truth)
                    rows.append({"scene": scene.scene_id, "setting": name, "group": group, "request": rec["question"],
                                 "kind": rec["qtype"], **out})
    return {"scenes": cfg.episodes, "rows": rows, "seconds": round(time.perf_counter() - t0, 1),
            "summary": summarise(rows)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """setting -> group -> n, refused share and (present groups) Acc@0.25."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, *_ in SETTINGS:
        for group in GROUPS:
            sel = [r for r in rows if r["setting"] == name and r["group"] == group]
            if sel:
                out.setdefault(name, {})[group] = {
                    "n": len(sel), "refused": float(np.mean([r["refused"] for r in sel])),
                    "acc25": None if "absent" in group else float(np.mean([r["iou"] >= 0.25 for r in sel]))}
    return out


REFUSAL_HEADER = ["map checks", "absent navigation refused", "goals for absent", "ground Acc@0.25 (refused)",
                  "navigation target Acc@0.25 (refused)", "relational absent refused",
                  "relational present Acc@0.25 (refused)"]


def refusal_rows(result: dict[str, Any]) -> list[list[object]]:
    rows = []
    for name, groups in result["summary"].items():
        def cell(group: str, acc: bool = False) -> str:
            g = groups.get(group)
            if g is None:
                return "–"
            return f"{g['acc25']:.1%} ({g['refused']:.0%})" if acc else f"{g['refused']:.1%} (n={g['n']})"
        absent = groups.get("absent")
        goals = "–" if absent is None else str(round(absent["n"] * (1 - absent["refused"])))
        rows.append([name, cell("absent"), goals, cell("ground", True), cell("navigate", True),
                     cell("relational absent"), cell("relational present", True)])
    return rows
