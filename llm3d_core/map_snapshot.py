"""What the reasoner answers about (llm3d_core.reasoner): one loaded map version, or one camera
view before any map exists, with what is derived from it once (the model's scene input, the
answer evidence, the mask head's dense sample, the free space for goals)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from llm3d_core.map_evidence import MapEvidence
from llm3d_core.mapping.goals import GoalConfig, NavigationMap
from llm3d_core.reasoner_config import ReasonerError

if TYPE_CHECKING:
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.model.scene import SceneInput


class NoMapObjects:
    """A snapshot's mapper without objects or text features: ground returns the model's own box.
    As it stands, a single camera view (no geometry either: MapSnapshot.navigation refuses it);
    subclasses may add a map's geometry for driving (the benchmark's 2D and single-view rows)."""

    objects: list = []
    text_dim = 0


class MapSnapshot:
    """One loaded map version: the mapper, the model's scene input, and (lazily) its free space.

    frame_id: None for a map (boxes in the map frame); the camera frame's name for a single view
    (Reasoner.set_frame: boxes in that camera's coordinates, no navigation)."""

    def __init__(self, mapper: "FeatureFusionMapper", scene: "SceneInput", version: str, goals: GoalConfig,
                 frame_id: str | None = None) -> None:
        self.mapper = mapper
        self.scene = scene
        self.version = version
        self.frame_id = frame_id
        self._goals = goals
        self._nav: NavigationMap | None = None
        self._evidence: dict[float, MapEvidence] = {}
        self._dense: dict[tuple[int, int], "SceneInput"] = {}

    @property
    def is_frame(self) -> bool:
        return self.frame_id is not None

    def evidence(self, min_confidence: float) -> MapEvidence:
        """The map's object list as answer evidence (llm3d_core.map_evidence), built once per map version."""
        if min_confidence not in self._evidence:
            config = getattr(self.mapper, "config", None)  # NoMapObjects (a single view) has none
            vocabulary = config.objects.vocabulary if config is not None else ()
            self._evidence[min_confidence] = MapEvidence(self.mapper.objects, vocabulary, min_confidence)
        return self._evidence[min_confidence]

    def dense_scene(self, num_points: int, seed: int = 0, object_points: int = 0) -> "SceneInput":
        """The map sampled at `num_points` (the mask head's density; object_points per object first),
        built once per map version."""
        from llm3d_core.model.scene import scene_from_mapper

        if self.is_frame:
            raise ReasonerError("the mask head reads a map's dense sample; a single view has none "
                                "(box_source location_tokens answers from a view)")
        key = (num_points, object_points)
        if key not in self._dense:
            self._dense[key] = scene_from_mapper(self.mapper, num_points, seed, object_points)
        return self._dense[key]

    def require_navigable(self) -> None:
        if self.is_frame:
            raise ReasonerError("navigation needs a map: until the mapper saves one, answers come from the "
                                f"camera's current view ({self.frame_id}), which has no free space to plan in")

    @property
    def navigation(self) -> NavigationMap:
        self.require_navigable()
        if self._nav is None:  # only navigation needs the grid; building it is not free on big maps
            points, _ = self.mapper.colored_points()
            self._nav = NavigationMap.from_points(points, self._goals, self.mapper.visited_xy())
        return self._nav


def saved_map_version(map_dir: str | Path) -> str | None:
    """The save id in map_dir/map.json (changes with every save), or None when there is no readable map."""
    import json

    try:
        meta = json.loads((Path(map_dir) / "map.json").read_text())
    except (OSError, ValueError):
        return None  # absent, or replaced mid-read: the next poll sees the committed one
    return str(meta.get("save_id", "")) if isinstance(meta, dict) else None
