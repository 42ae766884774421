"""`llm3d demo`: the main job end to end on a held-out scene, without ROS.

A robot is dropped into a test-split scene it never trained on. It explores with the frontier
explorer, fuses every few frames into the incremental feature map (3D-LLM, Hong et al. 2023,
sec. 3.2, made live), then the 3D-LLM answers questions, grounds objects, decomposes a task
(sec. 4) and picks a navigation goal that the robot drives to on the navigation grid. Ground
truth comes from the scene's annotations through the same generator that made the training data,
so every answer is shown beside what is true. `llm3d_bench.report` draws the result.

The ROS variant (`llm3d demo --ros`) runs the same episode through the nodes instead; this
module is the core path both share the scoring of.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from llm3d_bench.episode_config import EpisodeConfig

if TYPE_CHECKING:
    from llm3d_core.model.modeling_llm3d import Llm3dModel

log = logging.getLogger(__name__)

QA_TYPES = ("color", "count", "exists", "category", "relation", "size", "compare", "affordance")


@dataclass
class DemoConfig(EpisodeConfig):
    """What the demo runs: one episode (EpisodeConfig's fields) in one scene.

    Fields:
        split, scene_index: the scene is the `scene_index`-th seed of `split` (test: never trained on).
        control_dt: path-following tick (seconds).
        thumbnails: first-person frames kept for the report.
    """

    split: str = "test"
    scene_index: int = 0
    control_dt: float = 0.1
    thumbnails: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {self.split!r}")
        if self.thumbnails < 1:
            raise ValueError(f"thumbnails must be >= 1, got {self.thumbnails}")
        if self.scene_index < 0:
            raise ValueError(f"scene_index must be >= 0, got {self.scene_index}")
        if not self.control_dt > 0:
            raise ValueError(f"control_dt must be > 0, got {self.control_dt}")


@dataclass
class NavigationResult:
    instruction: str
    target_label: str  # what the model grounded
    truth_label: str  # the instruction's object (ground truth)
    goal: list[float]  # [x, y, yaw] the reasoner chose
    path_xy: np.ndarray  # (T, 2) driven positions
    state: str  # reached | failed | timeout | no_goal
    message: str
    distance_to_target: float  # metres from the final position to the true target's footprint
    success: bool
    spl: float  # success weighted by (shortest / driven) path length (Anderson et al. 2018)
    shortest_m: float
    driven_m: float
    success_distance: float
    target_iou: float | None = None  # 3D IoU of the object navigation drove to with the true target (None: not known)


@dataclass
class DemoResult:
    scene_id: str
    split: str
    checkpoint: str  # "" = untrained
    frames: int
    fused: int
    coverage: float
    objects: int
    map_seconds: float
    fps: float  # fused frames per second of mapping
    explore_path_xy: np.ndarray  # (T, 2)
    thumbnails: list[np.ndarray]  # (H, W, 3) uint8 first-person views
    caption: dict[str, Any]
    qa: list[dict[str, Any]]
    grounding: list[dict[str, Any]]
    plans: list[dict[str, Any]]
    navigation: NavigationResult | None
    answer_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    final_view: np.ndarray | None = None  # (H, W, 3) what the robot sees where it stopped
    # how it ran: in one process (llm3d_bench.demo), or through the ROS 2 nodes (llm3d_bench.ros_demo)
    stack: str = "in-process (llm3d demo)"

    def summary(self) -> dict[str, Any]:
        """Numbers for the console and the JSON file."""
        lat = sorted(self.answer_seconds)
        nav = self.navigation
        return {
            "scene": self.scene_id, "split": self.split, "stack": self.stack,
            "checkpoint": self.checkpoint or "untrained",
            "frames": self.frames, "fused": self.fused, "coverage": round(self.coverage, 3), "objects": self.objects,
            "map_seconds": round(self.map_seconds, 1), "mapper_fps": round(self.fps, 2),
            "qa_correct": f"{sum(q['correct'] for q in self.qa)}/{len(self.qa)}",
            "grounding_acc@0.25": f"{sum(g['iou'] >= 0.25 for g in self.grounding)}/{len(self.grounding)}",
            "navigation": None if nav is None else {
                "success": nav.success, "spl": round(nav.spl, 3), "distance_to_target_m": round(nav.distance_to_target, 2),
                "state": nav.state},
            "answer_p50_s": round(lat[len(lat) // 2], 3) if lat else None,
            "errors": self.errors,
        }


# ---------------------------------------------------------------------- picking requests
def pick_records(records: list[dict], cfg: DemoConfig, rng: np.random.Generator) -> dict[str, list[dict]]:
    """A varied handful per task: one QA per question type first, unique grounding referents first."""
    by_task: dict[str, list[dict]] = {}
    for rec in records:
        by_task.setdefault(rec["task"], []).append(rec)
    qa_pool = list(by_task.get("qa", []))
    rng.shuffle(qa_pool)
    qa: list[dict] = []
    for qtype in QA_TYPES:  # breadth first: the reader sees colour, counting, existence, relations...
        hit = next((r for r in qa_pool if r["qtype"] == qtype and r not in qa), None)
        if hit is not None and len(qa) < cfg.questions:
            qa.append(hit)
    qa += [r for r in qa_pool if r not in qa][: max(0, cfg.questions - len(qa))]
    ground = sorted(by_task.get("ground", []), key=lambda r: (not r.get("unique", True), rng.random()))
    nav = sorted(by_task.get("navigate", []), key=lambda r: (r["qtype"] != "object_goal", rng.random()))
    captions = [r for r in by_task.get("caption", []) if not r.get("boxes")]  # the scene caption
    return {"qa": qa, "ground": ground[: cfg.groundings], "plan": by_task.get("plan", [])[: cfg.plans],
            "navigate": nav[: cfg.navigations], "caption": captions[:1]}


# ---------------------------------------------------------------------- the episode, in parts
@dataclass
class MappedScene:
    """A scene explored once and fused into the feature map (what every request is answered from)."""

    scene: Any  # sim.scenes.scene.Scene
    mapper: Any  # FeatureFusionMapper
    frames: int  # explored frames
    fused: int  # of which fused into the map
    coverage: float  # share of the reachable navigable area seen
    objects: int
    map_seconds: float  # exploring + fusing + the final object update
    explore_path_xy: np.ndarray  # (T, 2)
    thumbnails: list[np.ndarray]  # (H, W, 3) uint8

    @property
    def fps(self) -> float:
        """Fused frames per second of the whole mapping run (exploration and rendering included)."""
        return self.fused / max(self.map_seconds, 1e-9)


def explore_and_map(sim: Any, seed: int, cfg: DemoConfig, device: str | None = None,
                    progress: Callable[..., Any] | None = None,
                    on_fused: Callable[[Any, Any], None] | None = None) -> MappedScene:
    """Loads scene `seed` into `sim`, explores it with the frontier explorer and fuses every
    `cfg.frames_every`-th frame into a new mapper (3D-LLM sec. 3.2, made live).

    on_fused(frame, feature_map) sees every fused frame with its 2D feature map (C, h, w), e.g. to
    keep per-frame features for a 2D baseline without encoding the frame twice.
    """
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from sim.datagen.maps import map_mapper_config
    from sim.explore import explore

    scene = sim.load(seed)
    mapper = FeatureFusionMapper(map_mapper_config(device=device))
    total = sim.config.explore.max_steps
    bar = progress(total, f"exploring + mapping {scene.scene_id}") if progress else None
    fused, thumbs, t0 = 0, [], time.perf_counter()
    keep_every = max(1, total // (cfg.thumbnails * 2))

    def on_frame(frame, i: int) -> None:
        nonlocal fused
        if i % cfg.frames_every == 0:
            feature_map = mapper.encode(frame)
            mapper.integrate(frame, feature_map)
            if on_fused is not None:
                on_fused(frame, feature_map)
            fused += 1
        if i % keep_every == 0:
            thumbs.append(frame.rgb.copy())
        if bar is not None:
            bar.update(1)

    explored = explore(sim, sim.config.explore, on_frame=on_frame, keep_frames=False)
    if bar is not None:
        bar.close()
    objects = mapper.update_objects()
    map_seconds = time.perf_counter() - t0
    log.info("mapped %s: %d frames fused of %d, %d objects, coverage %.2f, %.1f s", scene.scene_id, fused,
             explored.steps + 1, len(objects), explored.coverage, map_seconds)
    return MappedScene(scene, mapper, explored.steps + 1, fused, explored.coverage, len(objects), map_seconds,
                       explored.path_xy, spread(thumbs, cfg.thumbnails))


def pick_requests(scene: Any, grid: Any, cfg: DemoConfig, seen: set[int] | None = None) -> dict[str, list[dict]]:
    """The episode's requests with their ground truth, from the generator that made the training data.

    seen: instance ids the map holds; when given, only grounding and navigation requests whose
    objects are all among them are picked (a short exploration sees a few objects, and locating
    an unseen one tests the explorer, not the answer), and the generator writes referring
    expressions and navigation goals for every object of the scene so that each seen one has some;
    a task with no request about a seen object picks among all of its requests.
    """
    from sim.datagen.generator import DatagenConfig, generate_records

    if seen is None:
        records = generate_records(scene, DatagenConfig(seed=cfg.seed), grid=grid)
    else:
        records, unmapped = requests_about(scene, grid, cfg.seed, seen)
        # A task none of whose targets was mapped is still asked (the report then shows the miss).
        tasks = {r["task"] for r in records}
        records += [r for r in unmapped if r["task"] not in tasks]
    return pick_records(records, cfg, np.random.default_rng(cfg.seed))


def requests_about(scene: Any, grid: Any, seed: int, seen: set[int]) -> tuple[list[dict], list[dict]]:
    """The generator's records with grounding and navigation requests for every object of the scene,
    split into (records whose objects are all in `seen` or that name none, the other requests)."""
    from sim.datagen.generator import DatagenConfig, generate_records

    every = len(scene.instances)
    records = generate_records(scene, DatagenConfig(seed=seed, ground=every, navigate=every), grid=grid)
    about = [r for r in records if r["task"] not in ("ground", "navigate") or set(r["object_ids"]) <= seen]
    return about, [r for r in records if r["task"] in ("ground", "navigate") and not set(r["object_ids"]) <= seen]


def _timed(seconds: list[float], fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args); its wall time is appended to `seconds` only when it returns (an error is no latency sample)."""
    t = time.perf_counter()
    out = fn(*args)
    seconds.append(time.perf_counter() - t)
    return out


def ask_record(reasoner: Any, rec: dict, seconds: list[float], errors: list[str]) -> dict[str, Any]:
    """One QA record asked in a fresh session, scored by EM@1 (ScanQA's normalised exact match)."""
    from llm3d_core.model.evaluate import exact_match
    from llm3d_core.reasoner import ReasonerError

    try:
        answer, _ = _timed(seconds, reasoner.ask, rec["question"])
    except ReasonerError as err:
        answer = f"(error: {err})"
        errors.append(str(err))
    return {"question": rec["question"], "answer": answer, "truth": rec["answers"], "qtype": rec["qtype"],
            "correct": bool(exact_match(answer, rec["answers"]))}


def ground_record(grounder: Any, rec: dict, seconds: list[float], errors: list[str]) -> dict[str, Any]:
    """One grounding record: the best object's box against the true box (3D IoU; ScanRefer's Acc@k
    counts IoU >= k). `grounder` has Reasoner.ground's signature."""
    from llm3d_core.geometry import box_iou_3d
    from llm3d_core.reasoner import ReasonerError

    truth = np.asarray(rec["boxes"][0], dtype=np.float64)
    try:
        hits = _timed(seconds, grounder.ground, rec["question"], 1)
    except ReasonerError as err:
        hits = []
        errors.append(str(err))
    box = hits[0].box if hits else None
    return {"query": rec["question"], "truth_label": rec["answers"][0] if rec["answers"] else "",
            "truth_box": truth.tolist(), "label": hits[0].label if hits else "",
            "box": None if box is None else np.asarray(box).tolist(), "object_id": hits[0].id if hits else -1,
            "iou": box_iou_3d(box, truth) if box is not None else 0.0}


def plan_record(reasoner: Any, rec: dict, seconds: list[float], errors: list[str]) -> dict[str, Any]:
    """One task decomposition, scored by position-wise step accuracy (llm3d_core.model.evaluate)."""
    from llm3d_core.model.evaluate import step_accuracy
    from llm3d_core.reasoner import ReasonerError

    try:
        steps = _timed(seconds, reasoner.plan, rec["question"])
        acc = step_accuracy(steps, rec["steps"])
    except ReasonerError as err:
        steps, acc = [f"(error: {err})"], 0.0
        errors.append(str(err))
    return {"instruction": rec["question"], "steps": steps, "truth": rec["steps"], "step_accuracy": acc}


def run_demo(cfg: DemoConfig, model: "Llm3dModel", checkpoint: str = "", device: str | None = None,
             progress: Callable[..., Any] | None = None) -> tuple[DemoResult, Any]:
    """Explores, maps, asks, grounds, plans and navigates; returns the result and the mapper."""
    from llm3d_core.reasoner import Reasoner
    from sim.datagen.maps import map_sim_config
    from sim.scenes import seeds
    from sim.simulator import Simulator

    seed = seeds(cfg.split, 1, cfg.scene_index)[0]
    sim = Simulator(map_sim_config(width=cfg.width, height=cfg.height, max_steps=cfg.max_steps))
    try:
        mapped = explore_and_map(sim, seed, cfg, device, progress)
        scene, mapper = mapped.scene, mapped.mapper
        picked = pick_requests(scene, sim.grid, cfg)
        reasoner = Reasoner(model)
        reasoner.set_map(mapper, scene.scene_id)
        result = DemoResult(scene.scene_id, cfg.split, checkpoint, mapped.frames, mapped.fused, mapped.coverage,
                            mapped.objects, mapped.map_seconds, mapped.fps, mapped.explore_path_xy,
                            mapped.thumbnails, {}, [], [], [], None)
        seconds, errors = result.answer_seconds, result.errors

        session = reasoner.model.session(reasoner.map.scene, scene.scene_id)
        for rec in picked["caption"]:
            text = _timed(seconds, lambda: session.ask("", "caption", remember=False).text)
            result.caption = {"answer": text, "truth": rec["answers"][0]}
        result.qa = [ask_record(reasoner, rec, seconds, errors) for rec in picked["qa"]]
        result.grounding = [ground_record(reasoner, rec, seconds, errors) for rec in picked["ground"]]
        result.plans = [plan_record(reasoner, rec, seconds, errors) for rec in picked["plan"]]
        for rec in picked["navigate"][:1]:  # the report draws one drive
            result.navigation = navigate(sim, reasoner, rec, scene, cfg)
            result.final_view = sim.observe()["rgb"]
        return result, mapper
    finally:
        sim.close()


def spread(items: list, k: int) -> list:
    """At most k of `items`, evenly spaced from the first to the last (the report's thumbnails)."""
    if len(items) <= k:
        return list(items)
    idx = np.linspace(0, len(items) - 1, k).round().astype(int)
    return [items[i] for i in idx]


def shortest_path_m(grid: Any, inst: Any, start_xy: np.ndarray, success_distance: float) -> float:
    """Geodesic metres from start_xy to the success region of instance `inst` on the navigation grid
    (inf when it cannot be reached): SPL's shortest path."""
    from sim.datagen.nav_goals import goal_cells

    try:
        cells = goal_cells(grid, inst, success_distance, grid.largest_component())
        return float(grid.distance_field(cells).at(np.asarray(start_xy, dtype=np.float64)[:2])) if len(cells) \
            else math.inf
    except ValueError:
        return math.inf


def score_navigation(path_xy: np.ndarray, truth_box: np.ndarray, shortest: float,
                     success_distance: float) -> tuple[float, float, bool, float]:
    """(driven metres, distance from the path's end to the target's footprint, success, SPL) of a
    drive path_xy (T, 2), with habitat-lab's ObjectNav definitions (see `navigate`)."""
    from llm3d_core.mapping.goals import box_footprint_distance

    driven = float(np.linalg.norm(np.diff(path_xy, axis=0), axis=1).sum()) if len(path_xy) > 1 else 0.0
    dist = float(box_footprint_distance(path_xy[-1:], truth_box)[0])
    success = dist <= success_distance
    spl = float(success) * (shortest / max(shortest, driven, 1e-9)) if math.isfinite(shortest) else 0.0
    return driven, dist, success, spl


def navigate(sim: Any, reasoner: Any, rec: dict, scene: Any, cfg: DemoConfig) -> NavigationResult:
    """Grounds the instruction, drives to the reasoner's goal, scores against the true target.

    Success and SPL follow habitat-lab's ObjectNav definitions with the distance measured to the
    target's footprint: success when the robot stops within `success_distance`; SPL weights
    success by shortest geodesic path / max(shortest, driven) (Anderson et al. 2018).
    """
    from llm3d_core.mapping.goals import box_footprint_distance
    from llm3d_core.reasoner import ReasonerError
    from sim.follow import ACTIVE, REACHED, GoalError, PathFollower

    agent, grid = sim.agent, sim.grid
    start = agent.position.copy()
    inst = next(i for i in scene.instances if i.id == rec["object_ids"][0])
    truth_box = np.concatenate([inst.box_min, inst.box_max])
    shortest = shortest_path_m(grid, inst, start, cfg.success_distance)
    path = [start.copy()]
    try:
        target, goal = reasoner.navigation_goal(rec["question"], start, cfg.success_distance)
    except ReasonerError as err:
        return NavigationResult(rec["question"], "", inst.category, [], np.array(path), "no_goal", str(err),
                                float(box_footprint_distance(start[None], truth_box)[0]), False, 0.0, shortest, 0.0,
                                cfg.success_distance)
    follower = PathFollower(grid)
    try:
        follower.set_goal(start, np.array([goal.x, goal.y]), goal.yaw)
        ticks = int(cfg.max_drive_s / cfg.control_dt)
        for _ in range(ticks):
            if follower.state != ACTIVE:
                break
            v, w = follower.command(agent.x, agent.y, agent.yaw, cfg.control_dt)
            agent.velocity(v, w, cfg.control_dt)
            path.append(agent.position.copy())
        state = follower.state if follower.state != ACTIVE else "timeout"
        message = follower.message
    except GoalError as err:
        state, message = "failed", str(err)
    path_xy = np.array(path)
    driven, dist, success, spl = score_navigation(path_xy, truth_box, shortest, cfg.success_distance)
    return NavigationResult(rec["question"], target.label, inst.category, [goal.x, goal.y, goal.yaw], path_xy,
                            "reached" if state == REACHED else state, message, dist, success, spl, shortest, driven,
                            cfg.success_distance)
