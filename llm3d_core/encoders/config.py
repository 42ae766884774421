"""Configuration of the 2D image encoder whose per-pixel features the mapper lifts into 3D.

3D-LLM (Hong et al., 2023), section 3 "3D feature extraction": features of 2D multi-view images
are lifted into 3D; this config chooses how those 2D features are computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm3d_core.device import validate_device_name

TEXT_DIM = 384  # all-MiniLM-L6-v2 sentence-embedding size; the ConSE slice lives in this space


@dataclass
class EncoderConfig:
    """How 2D frames become dense feature maps (C, h, w).

    Fields:
        name: registered image encoder ("efficientnet_lite0", the default and always available
            offline; "open_clip", optional, needs `weights_path`).
        feature_dim: visual channels per location: EfficientNet's 1280-d head features after a
            fixed random projection seeded with 0 (identical in every process), L2-normalised.
            0 leaves the visual part out.
        text_aligned: append the 384-d MiniLM-space ConSE embedding (the top-k ImageNet class
            names' text embeddings weighted by their probabilities) so text queries compare
            directly against the map.
        top_k: number of ImageNet classes ConSE mixes per location.
        device: auto | cpu | cuda | cuda:N.
        weights_path: local checkpoint file, only for optional encoders (open_clip); never downloaded.
        max_side: images whose longer side exceeds this are resized down (keeping aspect ratio)
            before encoding; bounds compute per frame.
    """

    name: str = "efficientnet_lite0"
    feature_dim: int = 128
    text_aligned: bool = True
    top_k: int = 5
    device: str = "auto"
    weights_path: str = ""
    max_side: int = 640

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"encoder.name must be a non-empty string, got {self.name!r}")
        if not _is_int(self.feature_dim) or self.feature_dim < 0:
            raise ValueError(f"encoder.feature_dim must be an int >= 0, got {self.feature_dim!r}")
        if not isinstance(self.text_aligned, bool):
            raise ValueError(f"encoder.text_aligned must be a bool, got {self.text_aligned!r}")
        if self.feature_dim == 0 and not self.text_aligned:
            raise ValueError(
                "encoder.feature_dim is 0 and encoder.text_aligned is False: the encoder would output "
                "no channels; set feature_dim > 0 or text_aligned: true"
            )
        if not _is_int(self.top_k) or not 1 <= self.top_k <= 1000:
            raise ValueError(f"encoder.top_k must be an int in [1, 1000] (ImageNet classes), got {self.top_k!r}")
        if not isinstance(self.device, str):
            raise ValueError(f"encoder.device must be a string, got {self.device!r}")
        try:
            validate_device_name(self.device)
        except ValueError as err:
            raise ValueError(f"encoder.device: {err}") from err
        if not isinstance(self.weights_path, str):
            raise ValueError(f"encoder.weights_path must be a string path, got {self.weights_path!r}")
        if not _is_int(self.max_side) or self.max_side < 32:
            raise ValueError(f"encoder.max_side must be an int >= 32 (the encoder's stride), got {self.max_side!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
