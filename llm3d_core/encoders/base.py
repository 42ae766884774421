"""The contract every 2D image encoder meets, and the registry that names them.

3D-LLM (Hong et al., 2023), section 3 "3D feature extraction": features of 2D multi-view images
are lifted into 3D. An encoder turns one RGB frame into a dense feature map; the mapper
back-projects each location with depth and pose and fuses it into voxels.

This module stays light (no torch import at run time) so `import llm3d_core.encoders` is cheap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

    from llm3d_core.encoders.config import EncoderConfig

IMAGE_ENCODERS: dict[str, type["ImageEncoder"]] = {}

E = TypeVar("E", bound=type["ImageEncoder"])


def register_image_encoder(name: str) -> Callable[[E], E]:
    """Class decorator: makes the encoder buildable as `EncoderConfig(name=...)`."""

    def add(cls: E) -> E:
        if name in IMAGE_ENCODERS and IMAGE_ENCODERS[name] is not cls:
            raise ValueError(f"image encoder {name!r} is already registered by {IMAGE_ENCODERS[name].__name__}")
        IMAGE_ENCODERS[name] = cls
        return cls

    return add


class ImageEncoder(ABC):
    """Dense 2D features for one RGB frame.

    Output layout (C = out_dim channels): the visual part (`visual_dim` channels) comes first,
    the text-aligned part is the LAST `text_dim` channels (384 MiniLM-space channels, or 0),
    L2-normalised per location so a text query's embedding compares by a dot product.

    Subclasses set the three dims and `device` in `__init__` and implement `_encode`; `encode`
    validates the input first, so `_encode` only ever sees a well-formed uint8 (H, W, 3) array.
    """

    out_dim: int
    visual_dim: int
    text_dim: int
    device: "torch.device"

    def __init__(self, cfg: "EncoderConfig") -> None:
        self.cfg = cfg

    def encode(self, rgb: np.ndarray) -> "torch.Tensor":
        """uint8 (H, W, 3) RGB -> float32 (C, h, w) features on `self.device`.

        Raises ValueError for anything else (wrong dtype or shape, not 3 channels, empty, NaN).
        """
        return self._encode(check_rgb(rgb))

    @abstractmethod
    def _encode(self, rgb: np.ndarray) -> "torch.Tensor":
        """The model-specific part of `encode`; `rgb` is already validated."""

    def embed_crops(self, crops: list[np.ndarray], size: int = 224) -> "torch.Tensor":
        """Text-space embeddings (N, text_dim) of whole crops; encoders that can, override this."""
        raise NotImplementedError(f"{type(self).__name__} cannot embed image crops")


def text_slice(encoder: ImageEncoder) -> slice:
    """The channels of `encoder`'s output that live in the text-embedding space (may be empty)."""
    return slice(encoder.out_dim - encoder.text_dim, encoder.out_dim)


def check_rgb(rgb: object) -> np.ndarray:
    """Returns `rgb` if it is a non-empty uint8 (H, W, 3) array; ValueError saying what is wrong otherwise."""
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"image must be a numpy uint8 array of shape (H, W, 3), got {type(rgb).__name__}")
    if rgb.ndim != 3:
        raise ValueError(f"image must have shape (H, W, 3), got shape {rgb.shape}")
    if rgb.shape[2] != 3:
        raise ValueError(f"image must have 3 channels (RGB), got shape {rgb.shape}; drop alpha or expand grey first")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"image is empty: shape {rgb.shape}")
    # Checked before the dtype so a float image with NaNs gets the more useful message.
    if np.issubdtype(rgb.dtype, np.floating) and np.isnan(rgb).any():
        raise ValueError("image contains NaN values")
    if rgb.dtype != np.uint8:
        raise ValueError(
            f"image must be uint8 RGB in [0, 255], got dtype {rgb.dtype}; "
            "convert floats in [0, 1] with (img * 255).round().astype(np.uint8)"
        )
    return rgb
