"""Location tokens: `<loc_0>` ... `<loc_255>` discretise coordinates over the scene bounds.

3D-LLM (Hong et al. 2023, section 3.4) adds location tokens to the LLM vocabulary so that
grounding answers carry boxes: a 3D axis-aligned box is six tokens (min x, y, z, max x, y, z),
each the index of one of 256 bins spanning the scene's extent on that axis. A point (a navigation
goal) is three tokens. Decoding is strict: text that does not follow the grammar raises
`LocationDecodeError`, so a caller never receives a silently wrong box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

NUM_BINS = 256
LOC_PATTERN = re.compile(r"<loc_(\d+)>")
_LOC_FRAGMENT = re.compile(r"<\s*loc", re.IGNORECASE)


def location_token(index: int) -> str:
    return f"<loc_{index}>"


LOCATION_TOKENS: tuple[str, ...] = tuple(location_token(i) for i in range(NUM_BINS))


class LocationDecodeError(ValueError):
    """Generated text does not follow the location-token grammar; the message quotes it."""


@dataclass(frozen=True)
class SceneBounds:
    """Axis-aligned scene extent in the map frame; location bins span [lo, hi] per axis."""

    lo: np.ndarray  # (3,)
    hi: np.ndarray  # (3,)

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.lo, dtype=np.float64), np.asarray(self.hi, dtype=np.float64)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
            raise ValueError(f"scene bounds must be two finite 3-vectors, got {self.lo!r}, {self.hi!r}")
        if np.any(hi <= lo):
            raise ValueError(f"scene bounds need hi > lo on every axis, got lo={lo.tolist()} hi={hi.tolist()}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    @classmethod
    def from_points(cls, points: np.ndarray, margin: float = 0.1) -> "SceneBounds":
        """Bounds of (N, 3) points grown by `margin` metres (and at least 1 cm thick per axis)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if len(points) == 0:
            raise ValueError("cannot compute scene bounds of zero points")
        lo, hi = points.min(0) - margin, points.max(0) + margin
        thin = hi - lo < 0.01
        hi = np.where(thin, lo + 0.01, hi)
        return cls(lo, hi)

    @property
    def bin_size(self) -> np.ndarray:
        return (self.hi - self.lo) / NUM_BINS  # (3,)

    def as_array(self) -> np.ndarray:
        return np.stack([self.lo, self.hi])  # (2, 3)


def quantize(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int = NUM_BINS) -> np.ndarray:
    """Bin index of each coordinate; values outside [lo, hi] clip to the edge bins. (…, 3) -> (…, 3) int."""
    frac = (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)
    return np.clip(np.floor(frac * bins), 0, bins - 1).astype(np.int64)


def dequantize(indices: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int = NUM_BINS) -> np.ndarray:
    """Bin centres of indices. (…, 3) int -> (…, 3) float."""
    return lo + (np.asarray(indices, dtype=np.float64) + 0.5) / bins * (hi - lo)


def encode_point(point: np.ndarray, bounds: SceneBounds) -> str:
    """Three location tokens for a point (x, y, z) in the map frame."""
    point = np.asarray(point, dtype=np.float64)
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise ValueError(f"a point must be 3 finite numbers, got {point.tolist()!r}")
    return "".join(location_token(int(i)) for i in quantize(point, bounds.lo, bounds.hi))


def encode_box(box: np.ndarray, bounds: SceneBounds) -> str:
    """Six location tokens for an axis-aligned box [minx, miny, minz, maxx, maxy, maxz]."""
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (6,) or not np.all(np.isfinite(box)):
        raise ValueError(f"a box must be 6 finite numbers, got {box.tolist()!r}")
    if np.any(box[3:] < box[:3]):
        raise ValueError(f"box max must be >= min on every axis, got {box.tolist()}")
    q = quantize(box.reshape(2, 3), bounds.lo, bounds.hi).reshape(6)  # (6,)
    return "".join(location_token(int(i)) for i in q)


def split_location_answer(text: str, count: int) -> tuple[str, list[int]]:
    """Parses `<words> <loc_a>...<loc_f>`: free text, then exactly `count` adjacent location tokens, then nothing.

    Returns (the text before the tokens, the bin indices). Raises LocationDecodeError on any
    deviation: too few or too many tokens, text between or after them, an index out of range,
    or a malformed token.
    """
    matches = list(LOC_PATTERN.finditer(text))
    if len(matches) != count:
        raise LocationDecodeError(f"expected {count} location tokens, found {len(matches)} in {text!r}")
    for a, b in zip(matches, matches[1:]):
        if text[a.end():b.start()].strip():
            raise LocationDecodeError(f"text between location tokens in {text!r}")
    tail = text[matches[-1].end():]
    if tail.strip():
        raise LocationDecodeError(f"unexpected text {tail.strip()!r} after the location tokens in {text!r}")
    head = text[:matches[0].start()]
    if _LOC_FRAGMENT.search(head) or _LOC_FRAGMENT.search(tail):
        raise LocationDecodeError(f"malformed location token in {text!r}")
    indices = [int(m.group(1)) for m in matches]
    bad = [i for i in indices if not 0 <= i < NUM_BINS]
    if bad:
        raise LocationDecodeError(f"location index {bad[0]} is outside 0..{NUM_BINS - 1} in {text!r}")
    return head.strip(), indices


def decode_box(text: str, bounds: SceneBounds) -> tuple[str, np.ndarray]:
    """(label text, box (6,) in the map frame) from a grounding answer; strict (see split_location_answer).

    A box whose max bin is below its min bin on some axis is rejected, not reordered.
    """
    label, idx = split_location_answer(text, 6)
    q = np.asarray(idx, dtype=np.int64).reshape(2, 3)  # (2, 3)
    if np.any(q[1] < q[0]):
        raise LocationDecodeError(f"box max bin below min bin in {text!r}")
    lo, hi = bounds.lo, bounds.hi
    # min corner at the bin's lower edge, max corner at the upper edge: the decoded box contains
    # the quantised one, and each face is within one bin of the original.
    mins = lo + q[0] / NUM_BINS * (hi - lo)
    maxs = lo + (q[1] + 1) / NUM_BINS * (hi - lo)
    return label, np.concatenate([mins, maxs])


def decode_point(text: str, bounds: SceneBounds) -> np.ndarray:
    """A point (3,) in the map frame from exactly three location tokens (nothing else but spaces)."""
    label, idx = split_location_answer(text, 3)
    if label:
        raise LocationDecodeError(f"unexpected text {label!r} before the goal's location tokens")
    return dequantize(np.asarray(idx), bounds.lo, bounds.hi)


def add_location_tokens(tokenizer: "PreTrainedTokenizerBase") -> list[int]:
    """Adds the 256 location tokens (once) and returns their ids, which must be contiguous."""
    vocab = tokenizer.get_vocab()  # once: it rebuilds a 49k-entry dict per call (0.05 s each)
    missing = [t for t in LOCATION_TOKENS if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing)
    ids = tokenizer.convert_tokens_to_ids(list(LOCATION_TOKENS))
    if ids != list(range(ids[0], ids[0] + NUM_BINS)):
        raise ValueError("the tokenizer's location tokens are not contiguous ids; use a fresh tokenizer")
    return ids
