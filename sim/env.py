"""Habitat-shaped environment: `reset() -> observations`, `step(action)`, `episode_over`, `get_metrics()`.

Episodes are ObjectNav-style (Batra et al. 2020, "ObjectNav revisited"): a scene, a start pose
and a goal category with the ids of its instances. Measures follow habitat-lab's definitions:
- DistanceToGoal: geodesic distance from the agent to the nearest view point of any goal
  instance (navigable cells within `view_radius` of a goal box's footprint);
- Success: `stop` was called with DistanceToGoal <= `success_distance`;
- SPL (Anderson et al. 2018): Success * l / max(p, l), l = geodesic start-to-goal distance,
  p = length of the path the agent actually travelled.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sim.agent import STOP, action_name
from sim.config import SimConfig
from sim.navmesh import DistanceField
from sim.scenes.scene import Scene, seeds
from sim.simulator import Simulator


@dataclass
class Episode:
    """One ObjectNav episode (JSON-serialisable)."""

    episode_id: str
    scene_id: str
    start_position: list[float]  # world x, y
    start_yaw: float  # radians
    object_category: str
    goal_ids: list[int]
    seed: int | None = None  # procedural scenes: the generator seed
    scene_path: str | None = None  # file scenes: annotation .json or mesh
    geodesic_distance: float = math.nan  # start to goal, metres
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Episode:
        return cls(**d)


def save_episodes(path: str | Path, episodes: list[Episode]) -> Path:
    path = Path(path)
    path.write_text(json.dumps({"episodes": [e.to_dict() for e in episodes]}, indent=1))
    return path


def load_episodes(path: str | Path) -> list[Episode]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"episode file not found: {path}")
    return [Episode.from_dict(d) for d in json.loads(path.read_text())["episodes"]]


class SimEnv:
    """The environment loop around a Simulator; one episode at a time."""

    def __init__(self, config: SimConfig | None = None, sim: Simulator | None = None) -> None:
        self.config = config or SimConfig()
        self.sim = sim or Simulator(self.config)
        self.episode: Episode | None = None
        self._rng = np.random.default_rng(self.config.agent.seed)
        self._goal_field: DistanceField | None = None
        self._steps = 0
        self._called_stop = False
        self._seed_index = 0

    # -- episodes ----------------------------------------------------------------------------
    def _goal_field_for(self, scene: Scene, goal_ids: list[int]) -> DistanceField:
        grid = self.sim.grid
        centres = grid.cell_to_world(np.argwhere(np.ones(grid.shape, bool))).reshape(*grid.shape, 2)  # (rows, cols, 2)
        near = np.zeros(grid.shape, bool)
        for gid in goal_ids:
            inst = scene.instance(gid)
            lo, hi = inst.box_min[:2], inst.box_max[:2]
            gap = np.maximum(np.maximum(lo - centres, centres - hi), 0.0)  # (rows, cols, 2) distance outside the box
            near |= np.linalg.norm(gap, axis=-1) <= self.config.env.view_radius
        return grid.distance_field(np.argwhere(near & grid.navigable))

    def sample_episode(self, scene: Scene) -> Episode:
        """A random reachable ObjectNav episode in the loaded scene."""
        grid, rng = self.sim.grid, self._rng
        region = grid.largest_component()
        start = grid.sample_navigable(rng, region)
        categories = sorted({i.category for i in scene.instances})
        rng.shuffle(categories)
        for cat in categories:
            ids = [i.id for i in scene.instances if i.category == cat]
            dist = self._goal_field_for(scene, ids).at(start)
            if math.isfinite(dist) and dist > self.config.env.success_distance:
                return Episode(f"{scene.scene_id}_{rng.integers(1 << 30)}", scene.scene_id, start.tolist(),
                               float(rng.uniform(-math.pi, math.pi)), cat, ids, seed=scene.seed, geodesic_distance=dist)
        raise ValueError(f"scene {scene.scene_id} has no object reachable from the sampled start")

    def reset(self, seed: int | None = None, scene: Scene | str | Path | None = None,
              episode: Episode | None = None) -> dict:
        """Starts an episode: given, or sampled in the scene / seed (default: the next seed of the split)."""
        if episode is not None:
            source = episode.scene_path or episode.seed
            if source is None:
                raise ValueError(f"episode {episode.episode_id} names neither a seed nor a scene_path")
            loaded = self.sim.load(source)
        else:
            if scene is None and seed is None:
                seed = seeds(self.config.env.split, 1, self._seed_index)[0]
                self._seed_index += 1
            loaded = self.sim.load(scene if scene is not None else seed)
            episode = self.sample_episode(loaded)
        self.episode = episode
        self.scene = loaded
        self.sim.agent.reset(*episode.start_position, episode.start_yaw)
        self._goal_field = self._goal_field_for(loaded, episode.goal_ids)
        self._start_distance = self._goal_field.at(self.sim.agent.position)
        if not math.isfinite(self._start_distance):
            raise ValueError(f"episode {episode.episode_id}: goal {episode.object_category} is unreachable from the start")
        self._steps, self._called_stop = 0, False
        obs = self.sim.observe()
        obs["objectgoal"] = episode.object_category
        return obs

    # -- loop --------------------------------------------------------------------------------
    @property
    def episode_over(self) -> bool:
        return self._called_stop or self._steps >= self.config.env.max_episode_steps

    def step(self, action: str | int) -> dict:
        if self.episode is None:
            raise RuntimeError("call reset() before step()")
        if self.episode_over:
            raise RuntimeError("episode is over; call reset()")
        name = action_name(action)
        self._steps += 1
        if name == STOP:
            self._called_stop = True
        obs = self.sim.step(name)
        obs["objectgoal"] = self.episode.object_category
        return obs

    def distance_to_goal(self) -> float:
        return self._goal_field.at(self.sim.agent.position)

    def get_metrics(self) -> dict:
        """DistanceToGoal, Success, SPL (habitat-lab definitions), plus steps, path length, collisions."""
        if self.episode is None:
            raise RuntimeError("call reset() before get_metrics()")
        d = self.distance_to_goal()
        success = float(self._called_stop and d <= self.config.env.success_distance)
        l, p = self._start_distance, self.sim.agent.path_length
        spl = success * l / max(p, l) if max(p, l) > 0 else success
        return {"distance_to_goal": d, "success": success, "spl": spl, "steps": self._steps, "path_length": p,
                "collisions": self.sim.agent.collisions}

    metrics = get_metrics  # the name for it

    def close(self) -> None:
        self.sim.close()
