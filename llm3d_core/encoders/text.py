"""Text encoder for queries: all-MiniLM-L6-v2 sentence embeddings (384-d), offline.

The same model embeds the ImageNet class names that make the image encoder's text-aligned
(ConSE) channels, so a query and a map location compare by a dot product. 3D-LLM (Hong et al.,
2023), section 3: the lifted 2D features are what language is grounded against.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import torch

from llm3d_core.assets import minilm_dir
from llm3d_core.device import resolve_device
from llm3d_core.encoders.config import TEXT_DIM

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class TextEncoder:
    """Sentence embeddings for short texts: `encode(["coffee mug"]) -> (1, 384)`, unit-norm float32."""

    dim: int = TEXT_DIM

    def __init__(self, device: str = "cpu") -> None:
        self.device = resolve_device(device)
        self._model = _load_minilm(str(self.device))

    def encode(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """(N, 384) L2-normalised float32 embeddings on `self.device`, one row per text."""
        if isinstance(texts, str):
            raise ValueError("texts must be a list of strings, got a single string; wrap it in a list")
        if not isinstance(texts, (list, tuple)) or not texts:
            raise ValueError(f"texts must be a non-empty list of strings, got {texts!r}")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"texts[{i}] must be a non-empty string, got {text!r}")
        with torch.inference_mode():
            emb = self._model.encode(
                list(texts),
                batch_size=batch_size,
                convert_to_tensor=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )  # (N, 384)
        # inference_mode tensors cannot be used in autograd later; clone() outside makes a normal one.
        return emb.to(device=self.device, dtype=torch.float32).clone()


@functools.lru_cache(maxsize=None)
def get_text_encoder(device: str = "cpu") -> TextEncoder:
    """The process-wide TextEncoder for `device` (the model loads once per process and device)."""
    return TextEncoder(device)


@functools.lru_cache(maxsize=None)
def _load_minilm(device: str) -> "SentenceTransformer":
    # Set before sentence_transformers/huggingface_hub import: the hub reads it once, and without
    # it a missing file would become a network request instead of a clear local error.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_dir()), device=device)
    model.eval()
    return model
