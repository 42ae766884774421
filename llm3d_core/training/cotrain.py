"""2D-3D co-training: one stream that mixes single-frame and whole-scene samples (UniVLG sec. 3-4).

UniVLG (Jain et al., ICML 2025) trains one model on 2D views (lifted to 3D point sets) and on 3D
scenes together and reports that the 2D data helps 3D grounding. `CoTrainingMixer` interleaves
two sample streams (e.g. a JsonlSceneDataset of whole scenes and a stream of (record,
single-frame SceneInput) pairs) with a fixed fraction of single-frame samples.

The ratio is exact per block, not only in expectation: each block of `block_size` samples holds
exactly its share of frame samples (fractions carry over between blocks), at positions drawn from
a seeded generator. So two runs with one seed see the same sequence, and a short run or a small
ablation still trains on the ratio it asks for.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from torch.utils.data import IterableDataset

T = TypeVar("T")
SOURCES = ("frame", "scene")


@dataclass
class CoTrainingConfig:
    """How single-frame and whole-scene samples are mixed."""

    frame_fraction: float = 0.5  # share of single-frame samples in the stream (0: scenes only, 1: frames only)
    block_size: int = 20  # the ratio holds exactly within every block of this many samples
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.frame_fraction <= 1.0:
            raise ValueError(f"frame_fraction must be in [0, 1], got {self.frame_fraction}")
        if not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {self.block_size!r}")


def mixing_schedule(config: CoTrainingConfig) -> Iterator[str]:
    """The endless source sequence ("frame" | "scene"), deterministic given config.seed.

    Block k holds round((k + 1) * B * f) - round(k * B * f) frame samples, so after any whole
    number of blocks the frame count is round(n * f) exactly.
    """
    rng = random.Random(config.seed)
    b, f = config.block_size, config.frame_fraction
    k = 0
    while True:
        frames = round((k + 1) * b * f) - round(k * b * f)
        block = ["frame"] * frames + ["scene"] * (b - frames)
        rng.shuffle(block)
        yield from block
        k += 1


class CoTrainingMixer(IterableDataset, Generic[T]):
    """Interleaves `frames` and `scenes` samples following `mixing_schedule`; tags nothing, changes nothing.

    The stream ends as soon as the source it needs next is exhausted (so the ratio is never
    silently broken); pass repeating sources (`repeat=True` datasets) for training. Sharding
    across DDP ranks and loader workers is left to the sources (JsonlSceneDataset shards itself).
    """

    def __init__(self, frames: Iterable[T], scenes: Iterable[T], config: CoTrainingConfig | None = None) -> None:
        super().__init__()
        self.frames, self.scenes = frames, scenes
        self.config = config or CoTrainingConfig()

    def __iter__(self) -> Iterator[T]:
        its = {"frame": iter(self.frames), "scene": iter(self.scenes)}
        for source in mixing_schedule(self.config):
            try:
                yield next(its[source])
            except StopIteration:
                return

    def sources(self, count: int) -> list[str]:
        """The first `count` sources of the schedule (what a run's first samples come from)."""
        gen = mixing_schedule(self.config)
        return [next(gen) for _ in range(count)]


class RoundRobin(IterableDataset, Generic[T]):
    """One sample of each source in turn (several single-view record files as one frame stream);
    ends when a source ends."""

    def __init__(self, sources: list[Iterable[T]]) -> None:
        super().__init__()
        if not sources:
            raise ValueError("RoundRobin needs at least one source")
        self.sources = sources

    def __iter__(self) -> Iterator[T]:
        its = [iter(s) for s in self.sources]
        while True:
            for it in its:
                try:
                    yield next(it)
                except StopIteration:
                    return
