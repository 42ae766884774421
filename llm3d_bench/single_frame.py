"""The "single frame vs map" row of `llm3d bench embodied`: the 3D-LLM on one view instead of the map.

UniVLG (Jain et al., ICML 2025, sec. 3) runs a 2D view through its 3D model by lifting the
view's pixels with depth into a point set; `llm3d_core.model.single_frame` does that with the
mapper's own encoder and sampling. This row asks every request of the episode of the same
weights, but shows the model one fused frame instead of the fused map:

- the frame is the view in which the request's object covers the most pixels (the robot looks at
  it, as UniVLG's 2D benchmarks show the referred object), or, for a request that names no
  object, the last view of the exploration (what the robot sees now);
- the frame is lifted in the map frame (its pose applied), so its boxes compare with the truth;
  its objects come from the frame's own instance ids, and the object pointer picks among them;
- to drive, it uses the map's occupancy grid, as every row does (the robot's depth sensing
  avoids obstacles whatever the reasoner saw), so navigation measures where it points the robot.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from llm3d_core.reasoner import Grounded, Reasoner

if TYPE_CHECKING:
    from llm3d_core.geometry import RGBDFrame
    from llm3d_core.mapping.goals import GoalPose
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.model.modeling_llm3d import Llm3dModel


class FrameViews:
    """The fused frames of one exploration with their 2D feature maps (kept fp16 to halve memory);
    frames read back from the map cache get theirs from the encoder when first used."""

    def __init__(self) -> None:
        self.frames: list["RGBDFrame"] = []
        self.features: list[torch.Tensor | None] = []  # (C, h, w) fp16 each; None until encoded
        self._encode: list[Callable[["RGBDFrame"], torch.Tensor] | None] = []

    def add(self, frame: "RGBDFrame", feature_map: torch.Tensor) -> None:
        """The explore_and_map on_fused hook."""
        self.frames.append(frame)
        self.features.append(feature_map.detach().to("cpu", torch.float16))
        self._encode.append(None)

    def add_lazy(self, frame: "RGBDFrame", encode: Callable[["RGBDFrame"], torch.Tensor]) -> None:
        """A frame whose feature map `encode(frame)` computes when the frame is used."""
        self.frames.append(frame)
        self.features.append(None)
        self._encode.append(encode)

    def feature(self, i: int) -> torch.Tensor:
        """(C, h, w) fp16 feature map of frame i."""
        if self.features[i] is None:
            self.features[i] = self._encode[i](self.frames[i]).detach().to("cpu", torch.float16)
        return self.features[i]

    def __len__(self) -> int:
        return len(self.frames)

    def best_view(self, instance_id: int | None) -> int:
        """Index of the frame where `instance_id` covers the most pixels; the last frame when it is None
        or seen in none."""
        if not self.frames:
            raise ValueError("no frames were fused")
        if instance_id is not None:
            counts = [int((f.instance_ids == instance_id).sum()) if f.instance_ids is not None else 0
                      for f in self.frames]
            if max(counts) > 0:
                return int(np.argmax(counts))
        return len(self.frames) - 1


class SingleFrameRunner:
    """The reasoner's interface (ask, ground, plan, navigation_goal) answered from one view per request."""

    KEEP = 8  # frame scenes kept at once (each a few MB: points, features, the LLM's prefix cache)

    def __init__(self, model: "Llm3dModel", mapper: "FeatureFusionMapper", views: FrameViews,
                 targets: dict[str, int], version: str) -> None:
        """targets: request text -> the instance id it is about (the view is chosen by it)."""
        self.model, self.mapper, self.views, self.targets, self.version = model, mapper, views, targets, version
        self._reasoners: OrderedDict[int, Reasoner] = OrderedDict()  # frame index -> its reasoner, LRU

    def reasoner_for(self, text: str) -> Reasoner:
        from llm3d_core.model.single_frame import scene_from_frame
        from llm3d_bench.baselines import object_free_reasoner

        i = self.views.best_view(self.targets.get(text.strip()))
        if i not in self._reasoners:
            cfg, mcfg = self.model.config, self.mapper.config
            scene = scene_from_frame(self.views.frames[i], self.mapper.encoder, cfg.num_points, "world",
                                     mcfg.sample_stride, mcfg.depth_min, mcfg.depth_max, cfg.seed,
                                     feature_map=self.views.feature(i).float())
            # Ground in the frame, drive on the map's geometry.
            reasoner = object_free_reasoner(self.model, self.mapper, scene, f"{self.version}/frame{i}")
            self._reasoners[i] = reasoner
            # A few frame scenes kept: requests come by task, so one view's requests are spread over
            # the episode, and lifting a view and encoding it again cost more than the answer.
            while len(self._reasoners) > self.KEEP:
                self._reasoners.popitem(last=False)
        self._reasoners.move_to_end(i)
        return self._reasoners[i]

    def ask(self, question: str, session_id: str = "") -> tuple[str, str]:
        return self.reasoner_for(question).ask(question, session_id)

    def ground(self, query: str, max_results: int = 0) -> list[Grounded]:
        return self.reasoner_for(query).ground(query, max_results)

    def plan(self, instruction: str) -> list[str]:
        return self.reasoner_for(instruction).plan(instruction)

    def navigation_goal(self, instruction: str, robot_xy: np.ndarray | None,
                        max_distance: float | None = None) -> tuple[Grounded, "GoalPose"]:
        return self.reasoner_for(instruction).navigation_goal(instruction, robot_xy, max_distance)


def request_targets(picked: dict[str, list[dict]]) -> dict[str, int]:
    """Request text -> the first object id of the record, for every picked record that names one."""
    out: dict[str, int] = {}
    for records in picked.values():
        for rec in records:
            if rec.get("object_ids") and rec.get("question"):
                out.setdefault(str(rec["question"]).strip(), int(rec["object_ids"][0]))
    return out
