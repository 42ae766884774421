"""The systems `llm3d bench embodied` compares, behind the reasoner's interface.

Every system answers the requests it can with the methods of `llm3d_core.reasoner.Reasoner`
(`ask`, `ground`, `plan`, `navigation_goal`), so one scoring path (llm3d_bench.demo's record helpers and
`navigate`) serves them all:

- the 3D-LLM: a `Reasoner` in grounding mode 'model' on the fused map, so its grounding is the
  model's own (not averaged with the map's open-vocabulary score, which is the retrieval row);
- `RetrievalBaseline`: no LLM; the text query's MiniLM embedding against each map object's
  text-aligned feature (cosine similarity, `FeatureFusionMapper.query`), the best object is the
  answer. It grounds and picks navigation targets; it cannot answer questions or plan;
- `frame_reasoner`: the same LLM on the 2D input of `llm3d_core.model.frames2d` (per-frame features, no 3D
  fusion). It sees no map objects, so its grounding is the model's raw box; to drive, it uses the
  same occupancy grid as every other system (a 2D robot still avoids obstacles with its depth).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from llm3d_core.mapping.goals import GoalConfig, GoalError, GoalPose, NavigationMap
from llm3d_core.reasoner import Grounded, MapSnapshot, NoMapObjects, Reasoner, ReasonerConfig, ReasonerError

if TYPE_CHECKING:
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.model.modeling_llm3d import Llm3dModel
    from llm3d_core.model.scene import SceneInput
    from llm3d_core.model.frames2d import FrameTokens


def map_reasoner(model: "Llm3dModel", mapper: "FeatureFusionMapper", version: str,
                 box_source: str = "location_tokens") -> Reasoner:
    """The 3D-LLM on the fused map, grounding with its own boxes (matched to map objects); box_source
    'mask' takes them from UniVLG's mask head instead of the location tokens."""
    reasoner = Reasoner(model, ReasonerConfig(grounding="model", box_source=box_source))
    reasoner.set_map(mapper, version)
    return reasoner


class RetrievalBaseline:
    """Open-vocabulary retrieval on the map, no LLM (see the module docstring)."""

    def __init__(self, mapper: "FeatureFusionMapper", goals: GoalConfig | None = None) -> None:
        if not mapper.text_dim:
            raise ValueError("the retrieval baseline needs a map with text-aligned features "
                             "(mapper.encoder.text_aligned true)")
        self.mapper = mapper
        self.goals = goals or GoalConfig()
        self._nav: NavigationMap | None = None

    def ground(self, query: str, max_results: int = 1) -> list[Grounded]:
        """Map objects by cosine similarity of `query` to their text features, best first."""
        if not query.strip():
            raise ReasonerError("the query is empty")
        hits = self.mapper.query(query, top_k=max(1, max_results))
        return [Grounded(int(h.object.id), h.object.label, float(np.clip(h.score, 0.0, 1.0)),
                         np.concatenate([h.object.box_min, h.object.box_max]).astype(np.float64), "map")
                for h in hits]

    def navigation_goal(self, instruction: str, robot_xy: np.ndarray | None,
                        max_distance: float | None = None) -> tuple[Grounded, GoalPose]:
        """The best-matching object and a free goal pose facing it (Reasoner.navigation_goal's contract)."""
        targets = self.ground(instruction, 1)
        if not targets:
            raise ReasonerError(f"nothing in the map matches '{instruction.strip()}'")
        if self._nav is None:
            points, _ = self.mapper.colored_points()
            self._nav = NavigationMap.from_points(points, self.goals, self.mapper.visited_xy())
        try:
            goal = self._nav.choose_goal(targets[0].box, robot_xy, max_distance)
        except GoalError as err:
            raise ReasonerError(f"no goal for target {targets[0].id} '{targets[0].label}': {err}") from err
        return targets[0], goal


class _ObjectFreeMap(NoMapObjects):
    """The map as the 2D baseline may use it: geometry for driving, no objects, no text features."""

    def __init__(self, mapper: "FeatureFusionMapper") -> None:
        self._mapper = mapper

    def colored_points(self) -> tuple[np.ndarray, np.ndarray]:
        return self._mapper.colored_points()

    def visited_xy(self) -> np.ndarray:
        return self._mapper.visited_xy()


def frame_reasoner(model: "Llm3dModel", mapper: "FeatureFusionMapper", tokens: "FrameTokens", version: str,
                   ) -> Reasoner:
    """The LLM on per-frame 2D features (llm3d_core.model.frames2d), with the map's bounds as its location frame."""
    from llm3d_core.model.scene import scene_from_mapper

    cfg = model.config
    bounds = scene_from_mapper(mapper, 1, cfg.seed).bounds.numpy()  # (2, 3): only the frame, no points
    scene = tokens.scene_input(bounds, cfg.num_points, cfg.max_objects, cfg.seed)
    if scene.feature_dim != cfg.feature_dim:
        raise ValueError(f"the frames' features have D={scene.feature_dim} but the 2D checkpoint expects "
                         f"feature_dim={cfg.feature_dim}")
    return object_free_reasoner(model, mapper, scene, version)


def object_free_reasoner(model: "Llm3dModel", mapper: "FeatureFusionMapper", scene: "SceneInput",
                         version: str) -> Reasoner:
    """The model answering from `scene` (not the map's), grounding with its own raw box, and driving
    on the map's geometry (_ObjectFreeMap)."""
    reasoner = Reasoner(model, ReasonerConfig(grounding="model"))
    view: Any = _ObjectFreeMap(mapper)
    reasoner.map = MapSnapshot(view, scene, version, reasoner.config.goals)
    return reasoner
