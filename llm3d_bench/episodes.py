"""Navigation episodes in habitat-lab's ObjectNav episode-file shape, written and read back.

habitat-lab's ObjectNav datasets (`habitat/datasets/object_nav/object_nav_dataset.py`, format v1)
are one JSON (often .json.gz) with `episodes` (episode_id, scene_id, start_position,
start_rotation, object_category, info.geodesic_distance, ...) and `goals_by_category`, keyed by
"<scene file basename>_<category>", holding the goal objects (object_id, object_category, position,
view_points). `llm3d bench embodied` writes the navigation episodes it ran that way, so the same
episode set can run on habitat-sim where it installs, and it reads such files back (`--episodes-file`),
so users can bring their own episodes for the simulator's scenes.

Coordinates: habitat is y-up with the agent looking down -z at identity rotation; llm3d's world is
z-up (x, y on the floor, yaw from +x). A floor point (x, y) is habitat [x, 0, -y]; a yaw is the
rotation about habitat's +y by yaw - pi/2, stored as a quaternion [x, y, z, w] = [0, sin, 0, cos]
of half that angle.

What ObjectNav cannot say goes into each episode's `info["llm3d"]` (habitat-lab keeps `info` as a
free dict): the instruction in words, the goal type (object_goal | relational_goal), the instance
the instruction means (a relational goal names one chair, ObjectNav accepts any chair), and the
scene seed. Requests for things the scene does not hold have no goal object, which ObjectNav has no
place for: they are listed under the top-level key `llm3d_absent_episodes`, which habitat-lab's
reader ignores.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCENE_PREFIX = "llm3d/"
GOAL_TYPES = ("object_goal", "relational_goal")  # and absent/<kind>: the data generator's absent targets


class EpisodeFileError(ValueError):
    """An episode file that cannot be read or does not describe llm3d simulator scenes."""


@dataclass
class GoalObject:
    object_id: int
    category: str
    box: list[float]  # [xmin, ymin, zmin, xmax, ymax, zmax], llm3d world frame
    view_points: list[list[float]] = field(default_factory=list)  # [x, y] floor points near it


@dataclass
class NavEpisode:
    episode_id: str
    scene_id: str  # the simulator's scene id, e.g. sim_011000
    seed: int
    start: tuple[float, float, float]  # x, y, yaw (llm3d world frame)
    instruction: str
    goal_type: str  # object_goal | relational_goal | absent/<kind> (category, novel, attribute, ...)
    category: str
    target_ids: list[int]  # the instance the instruction means (scored against); [] for absent
    goals: list[GoalObject] = field(default_factory=list)  # every object of the category (ObjectNav's goals)
    geodesic_distance: float | None = None
    euclidean_distance: float | None = None

    def __post_init__(self) -> None:
        if self.goal_type not in GOAL_TYPES and not self.absent:
            raise EpisodeFileError(f"episode {self.episode_id}: goal type {self.goal_type!r} is not one of "
                                   f"{GOAL_TYPES} or absent/<kind>")

    @property
    def absent(self) -> bool:
        return self.goal_type.startswith("absent")


# ------------------------------------------------------------------ frames
def to_habitat_position(x: float, y: float, z: float = 0.0) -> list[float]:
    return [float(x), float(z), float(-y)]


def from_habitat_position(p: list[float]) -> tuple[float, float, float]:
    return float(p[0]), float(-p[2]), float(p[1])


def to_habitat_rotation(yaw: float) -> list[float]:
    half = (yaw - math.pi / 2) / 2
    return [0.0, math.sin(half), 0.0, math.cos(half)]


def from_habitat_rotation(q: list[float]) -> float:
    """Yaw of a rotation about habitat's up axis ([x, y, z, w]); tilt is ignored."""
    angle = 2.0 * math.atan2(float(q[1]), float(q[3]))
    return math.atan2(math.sin(angle + math.pi / 2), math.cos(angle + math.pi / 2))


def scene_seed(scene_id: str) -> int:
    """The simulator seed of a scene id (sim_011000 -> 11000), the inverse of sim.scenes' naming."""
    name = os.path.basename(scene_id).split(".")[0]
    if not name.startswith("sim_") or not name[4:].isdigit():
        raise EpisodeFileError(f"scene {scene_id!r} is not one of llm3d's simulator scenes (sim_NNNNNN); "
                               "episodes of other scenes run on habitat-sim, where it installs")
    return int(name[4:])


# ------------------------------------------------------------------ write
def to_habitat(episodes: list[NavEpisode]) -> dict[str, Any]:
    """The habitat-lab ObjectNav (v1) dataset dict of `episodes`."""
    out: list[dict] = []
    absent: list[dict] = []
    goals_by_category: dict[str, list[dict]] = {}
    categories: dict[str, int] = {}
    for ep in episodes:
        record = {
            "episode_id": ep.episode_id, "scene_id": SCENE_PREFIX + ep.scene_id,
            "start_position": to_habitat_position(ep.start[0], ep.start[1]),
            "start_rotation": to_habitat_rotation(ep.start[2]), "object_category": ep.category,
            "info": {"geodesic_distance": ep.geodesic_distance, "euclidean_distance": ep.euclidean_distance,
                     "closest_goal_object_id": ep.target_ids[0] if ep.target_ids else None,
                     "llm3d": {"instruction": ep.instruction, "goal_type": ep.goal_type, "seed": ep.seed,
                               "target_ids": list(ep.target_ids)}},
            "goals": [],  # habitat-lab fills them from goals_by_category
        }
        if ep.absent:
            absent.append(record)
            continue
        categories.setdefault(ep.category, len(categories))
        key = f"{ep.scene_id}_{ep.category}"
        known = {g["object_id"] for g in goals_by_category.get(key, [])}
        for g in ep.goals:
            if g.object_id in known:
                continue
            cx, cy, cz = [(g.box[i] + g.box[i + 3]) / 2 for i in range(3)]
            goals_by_category.setdefault(key, []).append({
                "object_id": g.object_id, "object_name": f"{g.category}_{g.object_id}", "object_category": g.category,
                "position": to_habitat_position(cx, cy, cz), "llm3d_box": list(g.box),
                "view_points": [{"agent_state": {"position": to_habitat_position(*v), "rotation": to_habitat_rotation(0.0)},
                                 "iou": 0.0} for v in g.view_points]})
            known.add(g.object_id)
        out.append(record)
    return {"episodes": out, "goals_by_category": goals_by_category,
            "category_to_task_category_id": categories, "category_to_scene_annotation_category_id": categories,
            "llm3d_absent_episodes": absent}


def write_episodes(path: str | Path, episodes: list[NavEpisode]) -> Path:
    """Writes the file atomically; gzip when the name ends in .gz (habitat-lab's .json.gz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(to_habitat(episodes), indent=1).encode()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------ the benchmark's requests
def nav_episodes(scene: Any, seed: int, grid: Any, picked: dict[str, list[dict]],
                 starts: list[tuple[float, float, float]], success_distance: float) -> list[NavEpisode]:
    """The episode's navigation requests as NavEpisodes (llm3d_bench.episodes): every object of the
    target's category is an ObjectNav goal; the record's own target is the one scored."""
    import numpy as np

    from llm3d_core.mapping.goals import box_footprint_distance
    from llm3d_bench.demo import shortest_path_m

    out = []
    for k, (rec, start) in enumerate(zip(picked["navigate"], starts)):
        inst = next(i for i in scene.instances if i.id == rec["object_ids"][0])
        goals = [GoalObject(i.id, i.category, [float(v) for v in (*i.box_min, *i.box_max)],
                            [list(rec["goal"][:2])] if i.id == inst.id and rec.get("goal") else [])
                 for i in scene.instances if i.category == inst.category]
        xy = np.array(start[:2], dtype=np.float64)
        geodesic = shortest_path_m(grid, inst, xy, success_distance)
        box = np.concatenate([inst.box_min, inst.box_max])
        euclid = float(box_footprint_distance(xy[None], box)[0])
        out.append(NavEpisode(f"{scene.scene_id}-{k}", scene.scene_id, seed, tuple(start), rec["question"],
                              rec["qtype"], inst.category, [inst.id], goals,
                              geodesic if math.isfinite(geodesic) else None, euclid))
    first = starts[0] if starts else (0.0, 0.0, 0.0)
    for k, rec in enumerate(picked["absent"]):
        out.append(NavEpisode(f"{scene.scene_id}-absent-{k}", scene.scene_id, seed, tuple(first), rec["question"],
                              rec["qtype"], "none", []))
    return out


def file_requests(episodes: list[NavEpisode], scene: Any) -> tuple[list[dict], list[dict], list[tuple[float, float, float]]]:
    """(navigation records, absent records, starts) of one scene's NavEpisodes, shaped as the data
    generator's records; EpisodeFileError when a target is not an object of the scene."""
    ids = {i.id for i in scene.instances}
    navigate = []
    for e in episodes:
        if e.absent:
            continue
        if not e.target_ids or e.target_ids[0] not in ids:
            raise EpisodeFileError(f"episode {e.episode_id}: target {e.target_ids[:1]} is not an object of "
                                   f"{scene.scene_id}")
        views = [g.view_points[0] for g in e.goals if g.object_id == e.target_ids[0] and g.view_points]
        navigate.append({"question": e.instruction, "object_ids": e.target_ids, "qtype": e.goal_type,
                         "answers": [e.category], "goal": views[0] if views else None})
    absent = [{"question": e.instruction, "qtype": e.goal_type} for e in episodes if e.absent]
    return navigate, absent, [e.start for e in episodes if not e.absent]


# ------------------------------------------------------------------ read
def read_episodes(path: str | Path) -> list[NavEpisode]:
    """The episodes of a file written by `write_episodes`, or of a habitat-lab ObjectNav file of
    llm3d's simulator scenes (instructions then read "Go to the <category>.", and any object of the
    category is a goal). Raises EpisodeFileError naming what is wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EpisodeFileError(f"{path}: not a readable episode file ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("episodes"), list):
        raise EpisodeFileError(f"{path}: no 'episodes' list (habitat-lab ObjectNav format expected)")
    goals = data.get("goals_by_category", {})
    out = []
    for k, ep in enumerate(data["episodes"] + data.get("llm3d_absent_episodes", [])):
        try:
            out.append(_episode(ep, goals, absent=k >= len(data["episodes"])))
        except EpisodeFileError as err:
            raise EpisodeFileError(f"{path}: {err}") from err
        except (KeyError, TypeError, IndexError, ValueError) as err:
            raise EpisodeFileError(f"{path}: episode {ep.get('episode_id', k) if isinstance(ep, dict) else k}: "
                                   f"{err!r}") from err
    return out


def _episode(ep: dict, goals_by_category: dict, absent: bool) -> NavEpisode:
    scene = os.path.basename(ep["scene_id"]).split(".")[0]
    seed = scene_seed(scene)
    category = str(ep["object_category"])
    extra = (ep.get("info") or {}).get("llm3d", {})
    x, y, _ = from_habitat_position(ep["start_position"])
    yaw = from_habitat_rotation(ep["start_rotation"])
    goals = []
    for g in goals_by_category.get(f"{scene}_{category}", []) if not absent else []:
        if "llm3d_box" in g:
            box = [float(v) for v in g["llm3d_box"]]
        else:  # a plain ObjectNav goal: its position, as a point box
            cx, cy, cz = from_habitat_position(g["position"])
            box = [cx, cy, cz, cx, cy, cz]
        views = [list(from_habitat_position(v["agent_state"]["position"])[:2]) for v in g.get("view_points", [])]
        goals.append(GoalObject(int(g["object_id"]), str(g.get("object_category", category)), box, views))
    if not absent and not goals:
        raise ValueError(f"no goal objects for '{scene}_{category}' in goals_by_category")
    info = ep.get("info") or {}
    # Scored against one instance: the one the instruction means, else ObjectNav's closest goal object.
    closest = info.get("closest_goal_object_id")
    targets = [int(t) for t in extra.get("target_ids", [])] or \
        ([int(closest)] if closest is not None else [goals[0].object_id] if goals else [])
    return NavEpisode(
        episode_id=str(ep["episode_id"]), scene_id=scene, seed=seed, start=(x, y, yaw),
        instruction=str(extra.get("instruction") or f"Go to the {category.replace('_', ' ')}."),
        goal_type=str(extra.get("goal_type") or ("absent/unknown" if absent else "object_goal")), category=category,
        target_ids=[] if absent else targets, goals=goals,
        geodesic_distance=info.get("geodesic_distance"), euclidean_distance=info.get("euclidean_distance"))
