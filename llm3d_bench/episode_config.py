"""What one episode runs in a scene, shared by `llm3d demo` (DemoConfig) and `llm3d bench embodied`
(EmbodiedConfig): how the robot maps it, what it is asked and how far it may drive."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class EpisodeConfig:
    """Fields:
        width, height: rendering size for mapping (intrinsics scaled, field of view kept).
        frames_every: fuse every N-th explored frame.
        max_steps: exploration steps (None: the simulator config's).
        questions: QA records asked, one per question type first.
        groundings, plans, navigations: grounding, planning and navigation requests.
        success_distance: metres; navigation succeeds within this of the target's footprint
            (habitat-lab's ObjectNav success distance is 1.0 m).
        max_drive_s: time limit of one navigation drive (simulated seconds).
        seed: request phrasing (and, in the benchmark, navigation starts).
    """

    width: int = 320
    height: int = 240
    frames_every: int = 3
    max_steps: int | None = None
    questions: int = 6
    groundings: int = 3
    plans: int = 1
    navigations: int = 1
    success_distance: float = 1.0
    max_drive_s: float = 90.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "height", "frames_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("questions", "groundings", "plans", "navigations"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if not (math.isfinite(self.success_distance) and self.success_distance > 0):
            raise ValueError(f"success_distance must be a positive number, got {self.success_distance}")
        if not self.max_drive_s > 0:
            raise ValueError(f"max_drive_s must be > 0, got {self.max_drive_s}")
