"""Confidence intervals and paired comparisons for the embodied benchmark (issue: a benchmark that
can tell systems apart).

Requests of one episode are not independent (one map, one exploration, one scene), so intervals
come from the cluster (episode) bootstrap: draw episodes with replacement, pool the drawn episodes'
records, recompute the metric; the 2.5th and 97.5th percentiles of B such draws bound a 95 %
interval (percentile bootstrap, Efron & Tibshirani 1993, ch. 13; resampling clusters, Field & Welsh
2007). Two systems run on the same episodes are compared paired: each draw takes the same episodes
for both, so the interval is of the difference itself; a difference whose interval excludes 0 is
called significant.

A metric here is the mean of one number per record (success, SPL, EM, IoU >= 0.25, ...), pooled
over the drawn episodes: the benchmark's own definition, so the point estimate equals the table's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_DRAWS = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A metric's value on all episodes and its bootstrap interval."""

    value: float
    low: float
    high: float
    records: int

    def excludes(self, x: float = 0.0) -> bool:
        return not (self.low <= x <= self.high)

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "records": self.records}


def _per_episode(values_by_episode: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """(sums, counts) per episode, (E,) each."""
    sums = np.array([float(np.sum(v)) for v in values_by_episode], dtype=np.float64)
    counts = np.array([len(v) for v in values_by_episode], dtype=np.float64)
    return sums, counts


def _draws(episodes: int, draws: int, seed: int) -> np.ndarray:
    """(B, E) indices of episodes drawn with replacement."""
    return np.random.default_rng(seed).integers(0, episodes, size=(draws, episodes))


def _pooled_means(sums: np.ndarray, counts: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(B,) pooled mean of each draw; NaN where a draw holds no record."""
    total = counts[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, sums[idx].sum(axis=1) / np.maximum(total, 1), np.nan)


def _bounds(samples: np.ndarray, level: float) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(values_by_episode: Sequence[Sequence[float]], draws: int = DEFAULT_DRAWS, seed: int = 0,
                       level: float = LEVEL) -> Interval | None:
    """The pooled mean of per-record values and its episode-bootstrap interval; None without records.

    values_by_episode: one list of per-record values per episode (an episode may have none)."""
    sums, counts = _per_episode(values_by_episode)
    if counts.sum() == 0:
        return None
    value = float(sums.sum() / counts.sum())
    low, high = _bounds(_pooled_means(sums, counts, _draws(len(counts), draws, seed)), level)
    return Interval(value, low, high, int(counts.sum()))


def paired_difference(a_by_episode: Sequence[Sequence[float]], b_by_episode: Sequence[Sequence[float]],
                      draws: int = DEFAULT_DRAWS, seed: int = 0, level: float = LEVEL) -> Interval | None:
    """mean(a) - mean(b) over the same episodes, with an interval from drawing the same episodes for
    both; None when either has no record. Both lists are indexed by the same episodes."""
    if len(a_by_episode) != len(b_by_episode):
        raise ValueError(f"paired systems need the same episodes: {len(a_by_episode)} vs {len(b_by_episode)}")
    sa, ca = _per_episode(a_by_episode)
    sb, cb = _per_episode(b_by_episode)
    if ca.sum() == 0 or cb.sum() == 0:
        return None
    value = float(sa.sum() / ca.sum() - sb.sum() / cb.sum())
    idx = _draws(len(ca), draws, seed)
    low, high = _bounds(_pooled_means(sa, ca, idx) - _pooled_means(sb, cb, idx), level)
    return Interval(value, low, high, int(ca.sum() + cb.sum()))
