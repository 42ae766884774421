"""`llm3d bench embodied`: the main job scored on held-out test episodes, with baselines, in one table.

An episode is one test-split scene (fixed seeds from `sim.scenes.seeds("test", n)`): the robot
explores it once with the frontier explorer and fuses the map once (llm3d_bench.demo.explore_and_map),
then every system answers the same requests, generated with their ground truth from the scene's
annotations (llm3d_bench.demo.pick_requests), and drives from the same start poses.

Metrics, with their sources:

- navigation (habitat-lab `habitat/tasks/nav/nav.py` measures, ObjectNav-style): DistanceToGoal
  is the distance from where the robot stopped to the target object, measured here to the
  object's footprint (top-down box); Success is DistanceToGoal <= success distance (habitat-lab's
  ObjectNav default 1.0 m); SPL = Success * l / max(l, p) with l the shortest geodesic path from
  the start to the success region and p the path driven (Anderson et al. 2018, "On Evaluation of
  Embodied Navigation Agents");
- QA: EM@1 after ScanQA normalisation, and CIDEr (pycocoevalcap, Vedantam et al. 2015) over the
  QA answers (llm3d_core.model.evaluate);
- grounding: Acc@0.25 / Acc@0.5, the share of queries whose best box has 3D IoU >= 0.25 / 0.5
  with the true box (ScanRefer, Chen et al. 2020);
- task decomposition: position-wise step accuracy (llm3d_core.model.evaluate.step_accuracy);
- mapper frames/s: fused frames per second of the whole mapping run (rendering and exploration
  included), for systems that answer from the map;
- latency: p50 / p95 wall seconds per request (ask, ground, plan) of the system.

Systems (rows): the 3D-LLM with the objects encoder (the shipped checkpoint, or an untrained
model when there is none, labelled so), the 3D-LLM with the points encoder (checkpoints/llm3d-points
or --ckpt-points), the open-vocabulary retrieval baseline (no LLM), and the 2D baseline (the same
LLM on per-frame 2D features of the map's keyframes, llm3d_core.model.frames2d, with a checkpoint
trained on that input: checkpoints/llm3d-frames2d or --ckpt-2d). A system without a checkpoint
gets a row that says so instead of numbers. Rows of the same objects checkpoint run
differently: its location tokens generated one by one instead of copied by the object pointer
(when it has one), UniVLG's mask head for the boxes (when it has one), and a single lifted view
per request instead of the map (llm3d_bench.single_frame).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from llm3d_bench.embodied_stats import NAMES, add_statistics, format_interval
from llm3d_bench.episode_config import EpisodeConfig

if TYPE_CHECKING:
    from llm3d_core.model.configuration_llm3d import Llm3dConfig
    from llm3d_core.model.modeling_llm3d import Llm3dModel
    from llm3d_bench.demo import DemoConfig

KINDS = ("llm3d", "retrieval", "frames2d", "frame")
NO_CHECKPOINT = "no checkpoint"


@dataclass
class EmbodiedConfig(EpisodeConfig):
    """What `llm3d bench embodied` runs: EpisodeConfig's fields per episode, and

    Fields:
        episodes: test scenes (one episode each), the `scene_start`-th test seed on.
        scene_start: first test seed used.
        seen_only: grounding and navigation only for objects the map holds (quick: a 60-step
            exploration sees few objects, and the smoke run should locate what it saw).
        absent: navigation requests per episode for things the scene does not hold (the data
            generator's absent targets); each must be refused, none may publish a goal.
        episodes_file: a habitat-lab ObjectNav episode file (llm3d_bench.episodes) whose navigation
            episodes (scenes, starts, goals, absent targets) replace the generated ones; then
            `episodes`, `scene_start`, `navigations` and `absent` are the file's.
    """

    questions: int = 8
    groundings: int = 4
    plans: int = 2
    navigations: int = 2
    episodes: int = 3
    scene_start: int = 0
    seen_only: bool = False
    absent: int = 4
    episodes_file: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        for name in ("scene_start", "absent"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def quick(cls, **overrides: Any) -> "EmbodiedConfig":
        """A CI-sized smoke run: one scene, a short exploration at 160x120, two questions."""
        base = dict(episodes=1, width=160, height=120, max_steps=60, questions=2, groundings=1, plans=1,
                    navigations=1, max_drive_s=30.0, absent=2,
                    seen_only=True)
        return cls(**{**base, **overrides})

    @classmethod
    def full(cls, **overrides: Any) -> "EmbodiedConfig":
        """The benchmark at a size that separates systems: 10 test scenes, 30 questions, 15 groundings,
        10 navigation goals and 4 absent targets each (300 / 150 / 100 / 40 in all)."""
        base = dict(episodes=10, questions=30, groundings=15, plans=2, navigations=10, absent=4)
        return cls(**{**base, **overrides})

    def demo_config(self) -> "DemoConfig":
        from llm3d_bench.demo import DemoConfig

        episode = {f.name: getattr(self, f.name) for f in fields(EpisodeConfig)}
        return DemoConfig(split="test", thumbnails=1, **episode)


@dataclass
class System:
    """One row: a named system and what it runs on.

    kind: llm3d (the 3D-LLM on the fused map) | retrieval (map query, no LLM) | frames2d (2D baseline)
        | frame (the 3D-LLM on one lifted view per request, llm3d_bench.single_frame).
    model: the LLM for llm3d and frames2d; None with a checkpoint of "" means "no checkpoint".
    checkpoint: folder, "untrained", or "" when there is none.
    """

    name: str
    kind: str
    model: "Llm3dModel | None" = None
    checkpoint: str = ""
    hint: str = ""  # how to give the missing checkpoint
    pointer: bool = True  # llm3d with an object pointer: False generates the location tokens instead
    box_source: str = "location_tokens"  # llm3d: "mask" grounds with UniVLG's mask head (ReasonerConfig.box_source)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def runnable(self) -> bool:
        return self.kind == "retrieval" or self.model is not None


@dataclass
class _Scores:
    """Everything one system produced over all episodes."""

    qa: list[dict] = field(default_factory=list)
    grounding: list[dict] = field(default_factory=list)
    plans: list[dict] = field(default_factory=list)
    navigation: list[dict] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mapper_fps: list[float] = field(default_factory=list)
    absent: list[dict] = field(default_factory=list)  # navigation requests for absent things: refused or not


# ---------------------------------------------------------------------- systems
def load_systems(ckpt: Path | None, ckpt_points: Path | None, ckpt_2d: Path | None, model_config: "Llm3dConfig",
                 device: str | None = None) -> list[System]:
    """The rows (plus generated location tokens when the objects checkpoint has an object pointer,
    and UniVLG's mask head when it has one).
    The objects row runs untrained when `ckpt` is None (labelled so); the points
    and 2D rows load only from a given checkpoint. Raises CheckpointError / LlmLoadError / ValueError."""
    from llm3d_core.reasoner import load_model

    overrides = {"device": device} if device else None
    dev = device or model_config.device

    def load(path: Path, want_encoder: str | None, flag: str, want_input: str = "map") -> "Llm3dModel":
        model = load_model(path, model_config, dev, overrides=overrides)
        if want_encoder and model.config.scene_encoder != want_encoder:
            raise ValueError(f"{flag} {path}: the checkpoint's scene encoder is {model.config.scene_encoder!r}, "
                             f"this row needs {want_encoder!r}")
        if model.config.scene_input != want_input:
            raise ValueError(f"{flag} {path}: the checkpoint was trained on scene_input "
                             f"{model.config.scene_input!r}, this row needs {want_input!r}")
        return model

    if ckpt is not None:
        objects = System(NAMES["objects"], "llm3d", load(ckpt, "objects", "--ckpt"), str(ckpt))
    else:
        cfg = dataclasses.replace(model_config, scene_encoder="objects")
        objects = System(NAMES["objects"], "llm3d", load_model(None, cfg, dev, overrides=overrides), "untrained")
    points = System(NAMES["points"], "llm3d", hint="--ckpt-points DIR")
    if ckpt_points is not None:
        points.model, points.checkpoint = load(ckpt_points, "points", "--ckpt-points"), str(ckpt_points)
    frames = System(NAMES["frames2d"], "frames2d", hint="--ckpt-2d DIR")
    if ckpt_2d is not None:
        frames.model, frames.checkpoint = load(ckpt_2d, None, "--ckpt-2d", "frames2d"), str(ckpt_2d)
    retrieval = System(NAMES["retrieval"], "retrieval", checkpoint="-")
    rows = [objects, points, retrieval, frames]
    if objects.model is not None and objects.model.pointer is not None:
        # Same checkpoint, location tokens generated one by one (3D-LLM sec. 3.4) instead of copied
        # from the object the pointer picks: what the pointer adds to grounding and navigation.
        rows.insert(1, System(NAMES["generated_tokens"], "llm3d", objects.model, objects.checkpoint, pointer=False))
    if objects.model is not None and objects.checkpoint != "untrained":
        # Same checkpoint on one lifted view per request instead of the map (UniVLG's 2D input):
        # the "single-frame vs map".
        rows.insert(rows.index(points), System(NAMES["frame"], "frame", objects.model, objects.checkpoint))
    if objects.model is not None and objects.model.mask_head is not None:
        # Same checkpoint, boxes from UniVLG's mask head over the map's points (the box of the
        # decoded mask) instead of location tokens: the "location tokens vs mask head".
        rows.insert(2, System(NAMES["mask"], "llm3d", objects.model, objects.checkpoint, box_source="mask"))
    return rows


# ---------------------------------------------------------------------- the run
def navigation_starts(path_xy: np.ndarray, end_pose: tuple[float, float, float], targets: list[np.ndarray],
                      success_distance: float, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """One start pose per navigation target: the first where exploration ended, the others drawn from
    the explored path (inside the mapped area), preferring starts not already within success distance
    (habitat-lab's episode generators reject episodes that start solved)."""
    from llm3d_core.mapping.goals import box_footprint_distance

    starts = []
    for k, box in enumerate(targets):
        if k == 0 or len(path_xy) == 0:
            starts.append(end_pose)
            continue
        far = path_xy[box_footprint_distance(path_xy, box) > success_distance]
        pool = far if len(far) else path_xy
        x, y = pool[rng.integers(len(pool))]
        starts.append((float(x), float(y), float(rng.uniform(-math.pi, math.pi))))
    return starts


def run_embodied_bench(cfg: EmbodiedConfig, systems: list[System], device: str | None = None,
                       progress: Callable[..., Any] | None = None,
                       episodes_out: Path | None = None, cache: Path | None = None) -> dict[str, Any]:
    """Runs every runnable system on every episode; returns the JSON-ready result (see `embodied_rows`).
    episodes_out: where the navigation episodes that ran are written as a habitat-lab ObjectNav file;
    cache: folder of maps built by earlier runs (llm3d_bench.map_cache; None: map every scene)."""
    from llm3d_bench.baselines import RetrievalBaseline, frame_reasoner, map_reasoner
    from sim.datagen.maps import map_sim_config
    from llm3d_bench.map_cache import explore_and_map_cached
    from llm3d_bench.demo import pick_requests
    from llm3d_bench.single_frame import FrameViews, SingleFrameRunner, request_targets
    from llm3d_core.model.frames2d import keyframe_tokens
    from llm3d_bench.episodes import file_requests, nav_episodes, read_episodes, write_episodes
    from sim.scenes import seeds
    from sim.simulator import Simulator

    dcfg = cfg.demo_config()
    given = read_episodes(cfg.episodes_file) if cfg.episodes_file else None
    scene_seeds = list(dict.fromkeys(e.seed for e in given)) if given is not None else \
        seeds("test", cfg.episodes, cfg.scene_start)
    ran_episodes: list = []
    scores = {s.name: _Scores() for s in systems}
    episodes: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for seed in scene_seeds:
        sim = Simulator(map_sim_config(width=cfg.width, height=cfg.height, max_steps=cfg.max_steps))
        try:
            views = FrameViews()
            keep_views = any(s.kind == "frame" and s.runnable for s in systems)
            mapped, cached = explore_and_map_cached(sim, seed, dcfg, cache, device, progress,
                                                    views if keep_views else None)
            scene, mapper = mapped.scene, mapped.mapper
            seen = {o.instance_id for o in mapper.objects} if cfg.seen_only else None
            picked = pick_requests(scene, sim.grid, dcfg, seen)
            if given is not None:  # the file's navigation episodes for this scene
                picked["navigate"], picked["absent"], starts = file_requests([e for e in given if e.seed == seed], scene)
                starts += [(sim.agent.x, sim.agent.y, sim.agent.yaw)] * (not starts)
            else:
                picked["absent"] = absent_requests(scene, sim.grid, cfg)
                boxes = [instance_box(scene, rec) for rec in picked["navigate"]]
                agent = sim.agent
                starts = navigation_starts(mapped.explore_path_xy, (agent.x, agent.y, agent.yaw), boxes,
                                           cfg.success_distance, np.random.default_rng([cfg.seed, seed]))
            ran_episodes += nav_episodes(scene, seed, sim.grid, picked, starts, cfg.success_distance)
            episodes.append({"scene": scene.scene_id, "seed": seed, "map_cached": cached,
                             "frames": mapped.frames, "fused": mapped.fused,
                             "coverage": round(mapped.coverage, 3), "objects": mapped.objects,
                             "map_seconds": round(mapped.map_seconds, 2), "mapper_fps": round(mapped.fps, 3),
                             "requests": {k: len(v) for k, v in picked.items() if k != "caption"},
                             "starts": [list(s) for s in starts]})
            runnable = [s for s in systems if s.runnable]
            total = sum(len(picked["ground"]) + len(picked["navigate"]) + len(picked["absent"])
                        + (0 if s.kind == "retrieval" else len(picked["qa"]) + len(picked["plan"])) for s in runnable)
            bar = progress(total, f"requests {scene.scene_id}") if progress else None
            for system in runnable:
                if system.model is not None:
                    system.model.use_pointer = system.pointer  # rows may share one model
                if system.kind == "retrieval":
                    runner: Any = RetrievalBaseline(mapper)
                elif system.kind == "frames2d":
                    # The map's keyframes, encoded as in training (model/frames2d.py): no fusion, no poses.
                    keyframes = [k.rgb for k in mapper.keyframes.keyframes]
                    tokens = keyframe_tokens(keyframes, mapper.encoder, system.model.config.frame_grid)
                    runner = frame_reasoner(system.model, mapper, tokens, scene.scene_id)
                elif system.kind == "frame":
                    runner = SingleFrameRunner(system.model, mapper, views, request_targets(picked), scene.scene_id)
                else:
                    runner = map_reasoner(system.model, mapper, scene.scene_id, system.box_source)
                if system.kind not in ("frames2d", "frame"):  # they do not answer from the map
                    scores[system.name].mapper_fps.append(mapped.fps)
                _run_requests(system, runner, picked, starts, sim, scene, dcfg, scores[system.name], bar)
            if bar is not None:
                bar.close()
        finally:
            sim.close()
    result = {"benchmark": "embodied", "config": dataclasses.asdict(cfg), "episodes": episodes,
              "seconds": round(time.perf_counter() - t_start, 1),
              "systems": [_system_result(s, scores[s.name]) for s in systems]}
    if episodes_out is not None:
        write_episodes(episodes_out, ran_episodes)
        result["episodes_file"] = str(episodes_out)
    add_statistics(result)
    result["header"], result["rows"] = EMBODIED_HEADER, embodied_rows(result)
    return result


def _run_requests(system: System, runner: Any, picked: dict[str, list[dict]], starts: list[tuple[float, float, float]],
                  sim: Any, scene: Any, dcfg: "DemoConfig", out: _Scores, bar: Any) -> None:
    """One system on one episode's requests; every navigation starts from its episode start pose."""
    from llm3d_bench.demo import ask_record, ground_record, navigate, plan_record

    for task, fn, sink in (("qa", ask_record, out.qa), ("ground", ground_record, out.grounding),
                           ("plan", plan_record, out.plans)):
        if task != "ground" and system.kind == "retrieval":
            continue  # no language model: it cannot answer or plan
        for rec in picked[task]:
            sink.append({"scene": scene.scene_id, **fn(runner, rec, out.seconds, out.errors), "qtype": rec["qtype"],
                         **({"unique": _unique_target(scene, rec)} if task == "ground" else {})})
            if bar is not None:
                bar.update(1)
    for rec, start in zip(picked["navigate"], starts):
        sim.agent.reset(*start)
        nav = navigate(sim, runner, rec, scene, dcfg)
        out.navigation.append({
            "scene": scene.scene_id, "qtype": rec["qtype"], "instruction": nav.instruction,
            "target_label": nav.target_label,
            "truth_label": nav.truth_label, "state": nav.state, "message": nav.message, "success": bool(nav.success),
            "spl": nav.spl, "distance_to_goal": nav.distance_to_target, "driven_m": nav.driven_m,
            "shortest_m": nav.shortest_m if math.isfinite(nav.shortest_m) else None,
            "start": list(start), "goal": nav.goal})
        if bar is not None:
            bar.update(1)


    for rec in picked["absent"]:  # nothing to drive to: a goal published here sends a robot astray
        sim.agent.reset(*(starts[0] if starts else (sim.agent.x, sim.agent.y, sim.agent.yaw)))
        out.absent.append({"scene": scene.scene_id, **absent_navigation(runner, rec, sim.agent.position.copy(),
                                                                         dcfg.success_distance)})
        if bar is not None:
            bar.update(1)


def absent_requests(scene: Any, grid: Any, cfg: EmbodiedConfig) -> list[dict]:
    """`cfg.absent` of the data generator's absent-target requests for this scene, as navigation requests."""
    from llm3d_core.model.configuration_llm3d import is_absent
    from sim.datagen.generator import DatagenConfig, generate_records

    if not cfg.absent:
        return []
    records = generate_records(scene, DatagenConfig(seed=cfg.seed, absent=cfg.absent), grid=grid)
    out = [r for r in records if is_absent(r)][: cfg.absent]
    # Bare phrases ("the giraffe") become requests; the generator's own requests stay as written.
    return [{**r, "question": r["question"] if r["question"][:1].isupper() else f"Go to {r['question']}."} for r in out]


def absent_navigation(runner: Any, rec: dict, start_xy: np.ndarray, success_distance: float) -> dict[str, Any]:
    """One navigation request for an absent thing: refused (no goal), or the goal it would publish."""
    from llm3d_core.reasoner import ReasonerError

    try:
        target, goal = runner.navigation_goal(rec["question"], start_xy, success_distance)
    except ReasonerError as err:
        return {"instruction": rec["question"], "kind": rec["qtype"], "refused": True, "message": str(err)}
    return {"instruction": rec["question"], "kind": rec["qtype"], "refused": False,
            "message": f"goal toward {target.id} '{target.label}'", "goal": [goal.x, goal.y, goal.yaw]}


def _unique_target(scene: Any, rec: dict) -> bool:
    """ScanRefer's split: the target is the only object of its category in the scene ("unique"),
    else the expression must tell it from others of its kind ("multiple")."""
    category = next(i.category for i in scene.instances if i.id == rec["object_ids"][0])
    return sum(i.category == category for i in scene.instances) == 1


def instance_box(scene: Any, rec: dict) -> np.ndarray:
    """The true box [min xyz, max xyz] of a request's target instance."""
    inst = next(i for i in scene.instances if i.id == rec["object_ids"][0])
    return np.concatenate([inst.box_min, inst.box_max])


# ---------------------------------------------------------------------- metrics and the table
def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _system_result(system: System, s: _Scores) -> dict[str, Any]:
    """Aggregates one system's records; None marks a metric the system cannot produce."""
    from llm3d_core.model.evaluate import caption_metrics

    base = {"name": system.name, "kind": system.kind, "checkpoint": system.checkpoint or NO_CHECKPOINT}
    if not system.runnable:
        return {**base, "status": NO_CHECKPOINT, "hint": system.hint, "metrics": {}}
    cider = None
    if s.qa:
        refs = {str(i): list(q["truth"]) for i, q in enumerate(s.qa)}
        preds = {str(i): q["answer"] for i, q in enumerate(s.qa)}
        cider = caption_metrics(refs, preds, meteor=False)["cider"]
    ious = [g["iou"] for g in s.grounding]
    nav = s.navigation
    lat = s.seconds
    metrics = {
        "success": _mean([float(n["success"]) for n in nav]),
        "spl": _mean([n["spl"] for n in nav]),
        "distance_to_goal_m": _mean([n["distance_to_goal"] for n in nav]),
        "qa_em@1": _mean([float(q["correct"]) for q in s.qa]),
        "qa_cider": cider,
        "ground_acc@0.25": _mean([float(i >= 0.25) for i in ious]),
        "ground_acc@0.5": _mean([float(i >= 0.5) for i in ious]),
        "plan_step_acc": _mean([p["step_accuracy"] for p in s.plans]),
        "absent_refused": _mean([float(a["refused"]) for a in s.absent]),
        "absent_goals": float(sum(not a["refused"] for a in s.absent)) if s.absent else None,
        "mapper_fps": _mean(s.mapper_fps),
        "latency_p50_s": float(np.percentile(lat, 50)) if lat else None,
        "latency_p95_s": float(np.percentile(lat, 95)) if lat else None,
    }
    counts = {"qa": len(s.qa), "ground": len(s.grounding), "plan": len(s.plans), "navigate": len(nav),
              "absent": len(s.absent),
              "timed_requests": len(lat), "errors": len(s.errors)}
    return {**base, "status": "ok", "metrics": metrics, "counts": counts, "qa": s.qa, "grounding": s.grounding,
            "plans": s.plans, "navigation": nav, "absent": s.absent, "errors": s.errors}


# (column title, metrics key, decimals)
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("Success", "success", 2), ("SPL", "spl", 2), ("DistToGoal m", "distance_to_goal_m", 2),
    ("QA EM@1", "qa_em@1", 2), ("QA CIDEr", "qa_cider", 2), ("Acc@0.25", "ground_acc@0.25", 2),
    ("Acc@0.5", "ground_acc@0.5", 2), ("plan step acc", "plan_step_acc", 2),
    ("absent refused", "absent_refused", 2), ("absent goals", "absent_goals", 0), ("mapper fps", "mapper_fps", 2),
    ("p50 s", "latency_p50_s", 3), ("p95 s", "latency_p95_s", 3))
EMBODIED_HEADER = ["system", *(c[0] for c in COLUMNS), "checkpoint"]


def embodied_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per system: numbers, 'n/a' where the system cannot do the task, '–' without a checkpoint."""
    rows = []
    for s in result["systems"]:
        if s["status"] == NO_CHECKPOINT:
            rows.append([s["name"], *("–" for _ in COLUMNS), f"{NO_CHECKPOINT} ({s['hint']})"])
            continue
        cells = [s["name"]]
        intervals = s.get("intervals", {})
        for _, key, digits in COLUMNS:
            v = s["metrics"].get(key)
            if v is None:
                cells.append("n/a")
            elif key in intervals and len(result.get("episodes", [])) > 1:  # one episode: no interval
                cells.append(format_interval(intervals[key], digits))
            else:
                cells.append(f"{v:.{digits}f}")
        cells.append(s["checkpoint"])
        rows.append(cells)
    return rows


def write_chart(path: Path, result: dict[str, Any]) -> Path:
    """A grouped bar chart of the [0, 1] metrics per system that ran (n/a bars left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("Success", "success"), ("SPL", "spl"), ("QA EM@1", "qa_em@1"), ("Acc@0.25", "ground_acc@0.25"),
            ("Acc@0.5", "ground_acc@0.5"), ("plan step acc", "plan_step_acc")]
    ran = [s for s in result["systems"] if s["status"] == "ok"]
    eps = result["episodes"]
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    width = 0.8 / max(len(ran), 1)
    x = np.arange(len(keys))
    for i, s in enumerate(ran):
        vals = [s["metrics"].get(k) for _, k in keys]
        shown = [(j, v) for j, v in enumerate(vals) if v is not None]
        xs = [x[j] + i * width for j, _ in shown]
        label = s["name"] + (" (untrained)" if s["checkpoint"] == "untrained" else "")
        ivs = [s.get("intervals", {}).get(keys[j][1]) for j, _ in shown]
        err = np.array([[v - iv["low"], iv["high"] - v] if iv and len(eps) > 1 else [0.0, 0.0]
                        for (_, v), iv in zip(shown, ivs)]).T.reshape(2, -1)  # (2, bars): the 95 % interval
        ax.bar(xs, [v for _, v in shown], width, label=label, yerr=np.clip(err, 0, None), capsize=2,
               error_kw={"elinewidth": 0.8})
    ax.set_xticks(x + width * (len(ran) - 1) / 2, [k for k, _ in keys])
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title(f"llm3d bench embodied: {len(eps)} held-out test episode(s)"
                 + (", 95 % episode-bootstrap intervals" if len(eps) > 1 else ""))
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
