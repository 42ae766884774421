"""Bilinear feature taps: where a pixel's feature is read in a (C, h, w) feature map.

The mapper lifts a grid of pixels (`lifting_grid`) and reads each one's 2D feature bilinearly from
the encoder's lower-resolution map (pixel centres, align_corners=False, zero outside). The four
taps and weights of every grid pixel depend only on the image and map sizes, so they are computed
once per camera (`grid_taps`) and applied as a sparse product (voxel_features.BilinearFeatures)."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from llm3d_core.geometry import pixel_grid
from llm3d_core.mapping.voxel_features import BilinearFeatures


def bilinear_taps(feature_map: torch.Tensor, v: np.ndarray, u: np.ndarray, height: int, width: int) -> BilinearFeatures:
    """The bilinear features at pixels (v, u) of an (height, width) image from a (C, h, w) map, as taps.

    The same sampling as `sample_features` (pixel centres, align_corners=False, zero outside the
    map): sample_features(...) == bilinear_taps(...).dense() up to float rounding.
    """
    _, fh, fw = feature_map.shape
    index, weights = tap_table(v, u, height, width, fh, fw)
    return taps_of(feature_map, index.to(feature_map.device), weights.to(feature_map.device))


@functools.lru_cache(maxsize=8)  # a camera's image size rarely changes
def lifting_grid(height: int, width: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The mapper's lifting grid (geometry.pixel_grid), cached and read-only."""
    v, u = pixel_grid(height, width, stride)
    v.flags.writeable = u.flags.writeable = False
    return v, u


@functools.lru_cache(maxsize=8)
def grid_taps(height: int, width: int, stride: int, fh: int, fw: int) -> tuple[np.ndarray, np.ndarray]:
    """tap_table of the whole lifting grid into an (fh, fw) feature map, as read-only arrays; cached."""
    index, weights = (t.numpy() for t in tap_table(*lifting_grid(height, width, stride), height, width, fh, fw))
    index.flags.writeable = weights.flags.writeable = False
    return index, weights


def tap_table(v: np.ndarray, u: np.ndarray, height: int, width: int, fh: int, fw: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear taps of pixels (v, u) of an (height, width) image into an (fh, fw) feature map:
    row indices (N, 4) int64 into the map's h*w pixels and weights (N, 4) float32 (0 outside)."""
    x = (u.astype(np.float64) + 0.5) * fw / width - 0.5  # feature-map coordinates of the pixel centres
    y = (v.astype(np.float64) + 0.5) * fh / height - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    dx, dy = x - x0, y - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    index, weights = [], []
    for oy, ox, w in ((0, 0, (1 - dx) * (1 - dy)), (0, 1, dx * (1 - dy)), (1, 0, (1 - dx) * dy), (1, 1, dx * dy)):
        xx, yy = x0 + ox, y0 + oy
        inside = (xx >= 0) & (xx < fw) & (yy >= 0) & (yy < fh)
        index.append(np.clip(yy, 0, fh - 1) * fw + np.clip(xx, 0, fw - 1))
        weights.append(np.where(inside, w, 0.0))
    return torch.from_numpy(np.stack(index, 1)), torch.from_numpy(np.stack(weights, 1).astype(np.float32))


def taps_of(feature_map: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> BilinearFeatures:
    """BilinearFeatures of a (C, h, w) map for precomputed taps (tap_table)."""
    c, fh, fw = feature_map.shape
    rows = feature_map.reshape(c, fh * fw).T  # (h*w, C); sparse.mm reads it as it is
    return BilinearFeatures(rows, index, weights)


def sample_features(feature_map: torch.Tensor, v: np.ndarray, u: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Bilinear features (N, C) at pixels (v, u) of an (height, width) image from a (C, h, w) map."""
    # Pixel centres -> [-1, 1] with align_corners=False: the feature map covers the whole image.
    gx = (torch.from_numpy(u).float() + 0.5) / width * 2 - 1
    gy = (torch.from_numpy(v).float() + 0.5) / height * 2 - 1
    grid = torch.stack([gx, gy], dim=1).to(feature_map.device)[None, None]  # (1, 1, N, 2)
    sampled = F.grid_sample(feature_map[None].float(), grid, mode="bilinear", align_corners=False)  # (1, C, 1, N)
    return sampled[0, :, 0].T  # (N, C)
