"""Checkpoint files of the 3D-LLM: the trainable tensors (`model.safetensors`) and the model config
(`config.json`), each written atomically; the frozen LLM is rebuilt from its package, not saved.

Every failure to read one is a CheckpointError naming the file: a missing or corrupt file, a config
of another format, tensors that do not match the configured model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llm3d_core.durable import durable_replace
from llm3d_core.model.configuration_llm3d import Llm3dConfig

if TYPE_CHECKING:
    import torch.nn as nn

CHECKPOINT_FORMAT = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or does not match the model; the message names file and problem."""


def save_checkpoint(state: dict[str, torch.Tensor], config: dict[str, Any], folder: str | Path,
                    extra: dict[str, Any] | None = None) -> Path:
    """Writes `state` (the trainable tensors) and `config` (Llm3dConfig.to_dict()) to `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": CHECKPOINT_FORMAT, "model_type": "llm3d", "config": config,
            "weights": WEIGHTS_NAME, "keys": sorted(state), **(extra or {})}
    tmp = folder / f".{WEIGHTS_NAME}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt", "model_type": "llm3d"})
    durable_replace(tmp, folder / WEIGHTS_NAME)
    _write_atomic(folder / CONFIG_NAME, json.dumps(meta, indent=1).encode())
    return folder


def read_weights(weights: Path) -> dict[str, torch.Tensor]:
    """The tensors of a model.safetensors (CheckpointError naming the file when missing or corrupt)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(weights))
    except (FileNotFoundError, SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights}: missing or corrupt weights file ({err})") from err


def _write_atomic(path: Path, data: bytes) -> None:
    """Writes `data` to `path` through a hidden temporary file beside it, so readers see old or new
    (and a power cut the old or the new: llm3d_core.durable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    durable_replace(tmp, path)


def load_trainable_into(model: "nn.Module", weights: Path, missing_ok: tuple[str, ...] = (),
                        skip: tuple[str, ...] = ()) -> None:
    """Loads the trainable tensors of `weights` into `model`; names starting with a prefix in
    `missing_ok` may be absent (a part added on top of an older checkpoint, e.g. the object pointer,
    then starts fresh). Tensors of the file starting with a prefix in `skip` are not loaded and their
    parts start fresh (a warm start that swaps a part, e.g. another scene encoder on the same LoRA)."""
    state = read_weights(weights)
    if skip:
        state = {n: t for n, t in state.items() if not n.startswith(skip)}
        missing_ok = (*missing_ok, *skip)
    expected = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(n for n in set(expected) - set(state) if not n.startswith(missing_ok))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{weights}: tensors do not match the configured model "
                              f"(missing {missing[:5]}{'…' if len(missing) > 5 else ''}, "
                              f"unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''})")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(f"{weights}: tensor {name} has shape {tuple(tensor.shape)}, "
                                  f"the model expects {tuple(expected[name].shape)}")
    model.load_state_dict(state, strict=False)


def read_checkpoint_config(folder: str | Path, overrides: dict[str, Any] | None = None) -> Llm3dConfig:
    """The Llm3dConfig stored in `folder/config.json` (CheckpointError when missing or invalid)."""
    from llm3d_core.config import ConfigError, config_from_dict

    path = Path(folder) / CONFIG_NAME
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise CheckpointError(f"{path} is missing: {folder} is not an llm3d checkpoint") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupt: {err}") from err
    if not isinstance(meta, dict) or meta.get("model_type") != "llm3d" or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an llm3d checkpoint of format {CHECKPOINT_FORMAT}")
    try:
        params = dict(meta["config"])
        params.update(overrides or {})
        return config_from_dict(Llm3dConfig, params, "checkpoint")
    except (KeyError, TypeError, ConfigError) as err:
        raise CheckpointError(f"{path}: invalid model config: {err}") from err


HEAD_PREFIXES = ("pointer.", "mask_head.")  # parts trained on a frozen model's LLM states (stages 2-4)


def graft_checkpoint(heads_from: str | Path, trunk_from: str | Path, out: str | Path) -> dict[str, Any]:
    """A checkpoint that is `heads_from` (its config, heads, calibration files) with every tensor that
    `trunk_from` trained (LoRA, scene encoder, location tokens; everything but HEAD_PREFIXES) taken
    from `trunk_from`: a retrained stage 1 under heads trained on the previous one's states.

    The heads read the LLM's hidden states, so a graft is only as good as those states are unchanged:
    evaluate it (grounding, absence) before shipping it. Returns what was taken from where."""
    heads_from, trunk_from, out = Path(heads_from), Path(trunk_from), Path(out)
    read_checkpoint_config(heads_from), read_checkpoint_config(trunk_from)  # both must be checkpoints
    base, trunk = read_weights(heads_from / WEIGHTS_NAME), read_weights(trunk_from / WEIGHTS_NAME)
    taken = sorted(n for n in trunk if not n.startswith(HEAD_PREFIXES))
    foreign = [n for n in taken if n not in base or tuple(base[n].shape) != tuple(trunk[n].shape)]
    if foreign:
        raise CheckpointError(f"{trunk_from}: tensors {foreign[:5]} are not in {heads_from} with the same shape: "
                              "the two checkpoints are not the same model")
    if not taken:
        raise CheckpointError(f"{trunk_from}: no trained tensors outside the heads to graft")
    state = {**base, **{n: trunk[n] for n in taken}}
    meta = json.loads((heads_from / CONFIG_NAME).read_text())
    extra = {k: v for k, v in meta.items() if k not in ("format", "model_type", "config", "weights", "keys")}
    graft = {"heads_from": str(heads_from), "trunk_from": str(trunk_from), "taken": len(taken),
             "kept": len(state) - len(taken)}
    out.mkdir(parents=True, exist_ok=True)
    for side in sorted(heads_from.glob("*_state.json")):  # calibration and history of the heads
        if side.name != "trainer_state.json":
            _write_atomic(out / side.name, side.read_bytes())
    trainer = trunk_from / "trainer_state.json"  # the trunk's training history
    if trainer.is_file():
        _write_atomic(out / trainer.name, trainer.read_bytes())
    save_checkpoint(state, meta["config"], out, extra={**extra, "graft": graft})
    return graft
