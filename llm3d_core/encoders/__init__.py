"""2D image encoders and the query text encoder of the feature-fusion mapper.

3D-LLM (Hong et al., 2023), section 3 "3D feature extraction": features of 2D multi-view images
are lifted into 3D. An `ImageEncoder` turns one RGB frame into a dense (C, h, w) feature map
whose last `text_dim` channels live in the MiniLM sentence-embedding space of `TextEncoder`.

Encoders register themselves by name in `IMAGE_ENCODERS` (a plain dict filled by
`@register_image_encoder`); the built-in ones are imported only when built, so importing this
package pulls in neither torch nor sentence-transformers.
"""

from __future__ import annotations

import importlib
import threading
import weakref
from typing import TYPE_CHECKING, Any

from llm3d_core.config import ConfigError
from llm3d_core.encoders.base import IMAGE_ENCODERS, ImageEncoder, check_rgb, register_image_encoder, text_slice
from llm3d_core.encoders.config import TEXT_DIM, EncoderConfig

if TYPE_CHECKING:
    from llm3d_core.encoders.efficientnet import EfficientNetLite0Encoder
    from llm3d_core.encoders.text import TextEncoder, get_text_encoder

# name -> module that registers it; imported on first use (each imports torch and its model code).
_BUILTIN_MODULES = {
    "efficientnet_lite0": "llm3d_core.encoders.efficientnet",
    "open_clip": "llm3d_core.encoders.open_clip_encoder",
}
_LAZY_ATTRIBUTES = {
    "TextEncoder": "llm3d_core.encoders.text",
    "get_text_encoder": "llm3d_core.encoders.text",
    "EfficientNetLite0Encoder": "llm3d_core.encoders.efficientnet",
}

__all__ = [
    "IMAGE_ENCODERS",
    "TEXT_DIM",
    "EfficientNetLite0Encoder",
    "EncoderConfig",
    "ImageEncoder",
    "SavedEncoder",
    "TextEncoder",
    "build_image_encoder",
    "shared_image_encoder",
    "check_rgb",
    "get_text_encoder",
    "register_image_encoder",
    "text_slice",
]


def build_image_encoder(cfg: EncoderConfig) -> ImageEncoder:
    """The registered encoder named `cfg.name`, built from `cfg` (loads its weights)."""
    if cfg.name not in IMAGE_ENCODERS and cfg.name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[cfg.name])
    cls = IMAGE_ENCODERS.get(cfg.name)
    if cls is None:
        known = sorted(set(IMAGE_ENCODERS) | set(_BUILTIN_MODULES))
        raise ConfigError(f"encoder.name {cfg.name!r} is not a registered image encoder; known: {', '.join(known)}")
    return cls(cfg)


_SHARED: "weakref.WeakValueDictionary[str, ImageEncoder]" = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def shared_image_encoder(cfg: EncoderConfig) -> ImageEncoder:
    """build_image_encoder(cfg), shared by everything alive in this process that asks for an equal config.

    Encoders are read-only at inference, so maps loaded one after another (the reasoner reloads
    every new save) share one instead of each building EfficientNet + MiniLM again: that took
    ~360 MB and seconds per load, with two maps alive during a reload. Held weakly: freed once
    no map holds it."""
    key = repr(cfg)  # dataclass repr: every field, nested configs included
    with _SHARED_LOCK:
        encoder = _SHARED.get(key)
        if encoder is None:
            encoder = build_image_encoder(cfg)
            _SHARED[key] = encoder
        return encoder


class SavedEncoder:
    """One CPU image encoder for many saved inputs (maps' keyframes, saved views) that each record
    their encoder config: built from the first config, and a later input made with another encoder
    is refused (its features would not be of the kind a model trained on)."""

    def __init__(self) -> None:
        self.encoder: ImageEncoder | None = None
        self.config: dict | None = None

    def get(self, config: dict, what: str, error: type[Exception] = ValueError) -> ImageEncoder:
        """The encoder for `config` (a saved EncoderConfig dict); `error` naming `what` if it differs."""
        from llm3d_core.config import config_from_dict

        enc = {**dict(config or {}), "device": "cpu"}
        if self.encoder is None:
            self.encoder = build_image_encoder(config_from_dict(EncoderConfig, enc, "encoder"))
            self.config = enc
        elif enc != self.config:
            raise error(f"{what} was made with encoder {enc}, other inputs with {self.config}")
        return self.encoder


def __getattr__(name: str) -> Any:
    # PEP 562: the torch-importing names load on first access, keeping the package import light.
    if name in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
