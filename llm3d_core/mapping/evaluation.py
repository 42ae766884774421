"""Checks of a map against real measurements."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from llm3d_core.geometry import RGBDFrame, validate_frame
from llm3d_core.mapping.tsdf import TsdfVolume


@dataclass
class DepthAgreement:
    median_m: float  # median |rendered - measured| over pixels valid in both
    mean_m: float
    coverage: float  # fraction of measured-valid pixels the map renders
    frames: int


def depth_agreement(tsdf: TsdfVolume, frames: Iterable[RGBDFrame], depth_max: float = 4.0) -> DepthAgreement:
    """Renders the fused surface at each frame's pose and compares with its measured depth.

    Use frames that were NOT fused, so the number measures the map, not the inputs echoed back.
    """
    errors, covered, valid_total, n = [], 0, 0, 0
    for frame in frames:
        depth_m, K, T = validate_frame(frame)
        h, w = depth_m.shape
        rendered = tsdf.render_depth(K, T, w, h)
        measured_ok = (depth_m > 0) & (depth_m < depth_max)
        both = measured_ok & (rendered > 0)
        errors.append(np.abs(rendered[both] - depth_m[both]))
        covered += int(both.sum())
        valid_total += int(measured_ok.sum())
        n += 1
    if not n or not covered:
        raise ValueError("no pixel could be compared (no frames, or the map renders nothing there)")
    err = np.concatenate(errors)
    return DepthAgreement(float(np.median(err)), float(err.mean()), covered / max(valid_total, 1), n)


def estimate_up_axis(poses: Iterable[np.ndarray]) -> tuple[int, float]:
    """World axis closest to 'up' for handheld/robot cameras, with its sign.

    OpenCV cameras have y pointing down, and such cameras are mostly held upright, so the mean of
    the cameras' -y axes in world coordinates points up.
    """
    up = -np.mean([np.asarray(T)[:3, 1] for T in poses], axis=0)
    axis = int(np.argmax(np.abs(up)))
    return axis, float(np.sign(up[axis]))
