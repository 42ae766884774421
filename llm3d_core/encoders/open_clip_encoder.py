"""Optional OpenCLIP encoder: dense CLIP patch embeddings from a local checkpoint the user supplies.

3D-LLM (Hong et al., 2023), section 3 "3D feature extraction" lifts CLIP-family 2D features into
3D; CLIP weights are on no registry reachable here, so this encoder only loads
`encoder.weights_path` and never downloads.

Contract differences from the default encoder: the output is CLIP's embedding per ViT patch
(`visual_dim` = CLIP's embed size, `text_dim` = 0 because it lives in CLIP's text space, not
MiniLM's; `feature_dim`, `text_aligned` and `top_k` do not apply). Frames are resized to the
model's square input, so the grid is (side/patch, side/patch) whatever the frame's aspect ratio.
The architecture is read from the checkpoint's file name, which must start with an OpenCLIP
model name (e.g. `ViT-B-16.pt`, `ViT-B-32-quickgelu__openai.bin`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from llm3d_core.device import resolve_device
from llm3d_core.encoders.base import ImageEncoder, register_image_encoder
from llm3d_core.encoders.config import EncoderConfig

INSTALL_HINT = "pip install --no-deps open_clip_torch ftfy (OpenCLIP also imports torchvision)"


@register_image_encoder("open_clip")
class OpenClipEncoder(ImageEncoder):
    """Dense OpenCLIP ViT features, (embed_dim, g, g) per frame; needs `weights_path` and open_clip."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__(cfg)
        if not cfg.weights_path:
            raise FileNotFoundError(
                "the 'open_clip' encoder needs encoder.weights_path: a local OpenCLIP checkpoint file "
                "(nothing is downloaded); or use encoder.name: efficientnet_lite0"
            )
        path = Path(cfg.weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"encoder.weights_path {str(path)!r} is not a file; pass a local OpenCLIP checkpoint"
            )
        try:
            import open_clip
        except ImportError as err:
            raise ImportError(f"the 'open_clip' encoder needs the open_clip package: {INSTALL_HINT}") from err

        arch = _architecture_from_name(path.name, open_clip.list_models())
        self.device = resolve_device(cfg.device)
        model = open_clip.create_model(arch, pretrained=str(path), device=self.device)
        self.visual: Any = model.visual.eval().requires_grad_(False)
        if not hasattr(self.visual, "output_tokens") or getattr(self.visual, "proj", None) is None:
            raise ValueError(f"OpenCLIP model {arch!r} has no projected ViT patch tokens; use a ViT architecture")
        self.visual.output_tokens = True  # forward returns (pooled, tokens)
        side = self.visual.image_size
        self.input_size: tuple[int, int] = tuple(side) if isinstance(side, (tuple, list)) else (side, side)
        # Newer OpenCLIP keeps the checkpoint's normalisation in visual.preprocess_cfg, older in image_mean/std.
        pp = getattr(self.visual, "preprocess_cfg", None) or {}
        mean = pp.get("mean") or getattr(self.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
        std = pp.get("std") or getattr(self.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255.0  # (1, 3, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255.0
        self.visual_dim = self.out_dim = int(self.visual.proj.shape[1])
        self.text_dim = 0

    def _encode(self, rgb: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            # A copy: frames are often read-only views, which torch warns about.
            x = torch.from_numpy(np.array(rgb, dtype=np.uint8, order="C")).to(self.device)  # (H, W, 3)
            x = x.permute(2, 0, 1).unsqueeze(0).float()  # (1, 3, H, W)
            x = F.interpolate(x, size=self.input_size, mode="bilinear", antialias=True, align_corners=False)
            _, tokens = self.visual((x - self.mean) / self.std)  # tokens: (1, g*g, width)
            dense = F.normalize(tokens[0] @ self.visual.proj, dim=1)  # (g*g, embed_dim)
            g = int(round(dense.shape[0] ** 0.5))
            out = dense.T.reshape(self.out_dim, g, g)  # (C, g, g)
        return out.clone()


def _architecture_from_name(file_name: str, models: list[str]) -> str:
    """The longest OpenCLIP model name that `file_name` starts with (so ViT-B-32-quickgelu beats ViT-B-32)."""
    matches = [m for m in models if file_name.startswith(m)]
    if not matches:
        raise ValueError(
            f"cannot tell the OpenCLIP architecture from {file_name!r}: rename the checkpoint to start with "
            f"a model name from open_clip.list_models(), e.g. 'ViT-B-16.pt'"
        )
    return max(matches, key=len)
