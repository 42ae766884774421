"""The saved map's folder format: what FeatureFusionMapper.save writes and .load reads.

A map folder holds immutable data files named by a save id (voxel chunks, objects, TSDF,
keyframes) and `map.json`, the manifest that names them, replaced last in one atomic rename: a
reader never sees a partial or mixed save, and a save by a live mapper writes only the voxel
chunks that changed. Every unreadable file is a MapFileError naming it.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llm3d_core.config import config_from_dict, config_to_dict
from llm3d_core.durable import durable_replace, fsync_file
from llm3d_core.mapping.objects import MapObject
from llm3d_core.mapping.tsdf import TsdfVolume
from llm3d_core.version import __version__

if TYPE_CHECKING:
    from llm3d_core.mapping.mapper import FeatureFusionMapper

MAP_FORMAT = 2  # 2: voxels in chunk files (save() writes only changed ones); 1 still loads


class MapFileError(RuntimeError):
    """A saved map is missing, corrupt or incompatible; the message names the file."""


def save_map(mapper: "FeatureFusionMapper", path: str | Path) -> Path:
    """Writes the map folder so that a reader never sees a partial or mixed save.

    Data files are immutable and named by a fresh save id: the voxels in chunks of
    CHUNK_SLOTS slots (voxels-<id>-<chunk>.safetensors), objects-<id>.safetensors,
    tsdf-<id>.npz, keyframes-<id>.npz. A save by the same mapper into the same folder writes
    only the voxel chunks that changed since its last save and names the others' existing
    files again, so a live map's save costs about what changed, not the whole map.
    `map.json` names the files and is replaced last, in one atomic rename, which commits the
    save; the data files and the manifest are fsynced before it and the folder after it, so a
    power cut leaves the last committed save readable (llm3d_core.durable). Files named by the
    save before stay until the next save (a reader that took the old manifest can still finish);
    files no manifest names are removed.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if mapper.frames:
        mapper.refresh_semantics()
    path.mkdir(parents=True, exist_ok=True)
    try:
        previous = _manifest_files(json.loads((path / "map.json").read_text()).get("files", {}))
    except (OSError, ValueError, AttributeError):
        previous = set()
    save_id = uuid.uuid4().hex[:12]
    dirty = mapper.voxels.take_dirty()  # None: everything (first save, a load, or another folder)
    reusable = mapper._saved_chunks if mapper._saved_to == path.resolve() and dirty is not None else {}
    files: dict[str, Any] = {"objects": f"objects-{save_id}.safetensors", "tsdf": f"tsdf-{save_id}.npz",
                             "keyframes": f"keyframes-{save_id}.npz"}
    chunks: dict[int, str] = {}
    written: list[Path] = []
    try:
        active = mapper.voxels.active_chunks()
        for chunk in active:  # unchanged chunks keep the file of an earlier save, if it is still there
            if chunk in reusable and chunk not in dirty and (path / reusable[chunk]).is_file():
                chunks[chunk] = reusable[chunk]
        for chunk, state in mapper.voxels.chunk_states([c for c in active if c not in chunks]):
            chunks[chunk] = f"voxels-{save_id}-{chunk}.safetensors"
            written.append(path / chunks[chunk])
            save_file(state, str(written[-1]), metadata={"save_id": save_id})
        files["voxel_chunks"] = [chunks[c] for c in active]
        written.append(path / files["objects"])
        save_file(_object_tensors(mapper.objects, mapper.encoder.out_dim, mapper.text_dim), str(written[-1]),
                  metadata={"save_id": save_id})
        keyframes = mapper.keyframes.state()
        if keyframes:
            written.append(path / files["keyframes"])
            np.savez_compressed(written[-1], **keyframes)
        else:
            del files["keyframes"]
        if mapper.tsdf is not None:
            written.append(path / files["tsdf"])
            mapper.tsdf.save(written[-1])
        else:
            del files["tsdf"]
        meta = {"format": MAP_FORMAT, "save_id": save_id, "files": files, "llm3d_version": __version__,
                "frames": mapper.frames, "feature_dim": mapper.encoder.out_dim, "text_dim": mapper.text_dim,
                "config": config_to_dict(mapper.config), "tracker": mapper.tracker.state(),
                "trajectory": [[round(v, 4) for v in p] for p in mapper.visited_path()]}
        for f in written:  # the data reaches the disk before the manifest that names it (durable.py)
            fsync_file(f)
        manifest_tmp = path / f".map.json.{save_id}.tmp"
        written.append(manifest_tmp)
        manifest_tmp.write_text(json.dumps(meta, indent=1))
        durable_replace(manifest_tmp, path / "map.json")  # the commit point
    except BaseException:
        for f in written:
            f.unlink(missing_ok=True)
        mapper.voxels.forget_saved()  # what changed since the last committed save is unknown now
        mapper._saved_chunks, mapper._saved_to = {}, None
        raise
    mapper._saved_chunks, mapper._saved_to = chunks, path.resolve()
    keep = _manifest_files(files) | previous | {"map.json"}
    for old in path.iterdir():
        if old.name not in keep and (old.name.split("-")[0] in ("voxels", "tsdf", "keyframes", "objects")
                                     or old.name.startswith(".map.json.")):
            old.unlink(missing_ok=True)
    return path


def load_map(cls: type["FeatureFusionMapper"], path: str | Path, device: str | None = None,
             attempts: int = 5) -> "FeatureFusionMapper":
    """Loads a saved map; a missing or corrupt file raises MapFileError naming it.

    A save that replaces the folder while it is read is detected (every file of one save
    carries the same save id) and the read is retried.
    """
    path = Path(path)
    missing = None
    for attempt in range(attempts):
        meta = _read_meta(path)
        files = meta.get("files", {})
        try:
            mapper = _mapper_from_meta(cls, meta, device)
            state, save_id = _read_voxels(path, files, mapper.voxels.state_dict())
            if mapper.tsdf is not None:
                _read_tsdf(mapper.tsdf, path / files.get("tsdf", "tsdf.npz"))
            keyframes = _read_keyframes(path / files["keyframes"]) if "keyframes" in files else {}
        except _Superseded as gone:
            missing = gone.args[0]
            time.sleep(0.05 * (attempt + 1))  # a newer save removed this save's files: read again
            continue
        if save_id == meta.get("save_id"):
            break
        raise MapFileError(f"{path}: voxels file belongs to save {save_id}, map.json to {meta.get('save_id')}")
    else:
        raise MapFileError(f"{missing}, named by {path / 'map.json'}, is missing (or the map kept changing "
                           f"while it was read, {attempts} attempts)")

    object_state = {k: state.pop(k) for k in list(state) if k.startswith("object_")}
    try:
        mapper.voxels.load_state_dict(state)
        features, samples, texts = _objects_from_tensors(object_state, len(meta["tracker"]["objects"]))
    except (KeyError, ValueError) as err:
        raise MapFileError(f"{path}: the saved voxel state is inconsistent: {err}") from err
    mapper.tracker.load_state(meta["tracker"], features, samples, texts)
    mapper.keyframes.load_state(keyframes)
    mapper.semantics.remember(mapper.tracker.objects)
    mapper.frames = int(meta["frames"])
    mapper.trajectory = [tuple(float(v) for v in p) for p in meta.get("trajectory", [])]  # older maps: none
    return mapper


def _mapper_from_meta(cls: type["FeatureFusionMapper"], meta: dict, device: str | None) -> "FeatureFusionMapper":
    from llm3d_core.mapping.mapper import MapperConfig

    config = config_from_dict(MapperConfig, meta["config"])
    if device is not None:
        config = dataclasses.replace(config, device=device)
    mapper = cls(config)
    if mapper.encoder.out_dim != meta["feature_dim"]:
        raise MapFileError(f"map.json: feature_dim {meta['feature_dim']} does not match the encoder's {mapper.encoder.out_dim}")
    return mapper


def _read_meta(path: Path) -> dict:
    meta_file = path / "map.json"
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError as err:
        raise MapFileError(f"no saved map at {path} ({meta_file} missing)") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MapFileError(f"{meta_file} is corrupt: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") not in (1, MAP_FORMAT):
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise MapFileError(f"{meta_file}: map format {found!r}, this llm3d reads {MAP_FORMAT}")
    return meta


class _Superseded(Exception):
    """A file named by map.json is gone: a newer save replaced it while this one was read."""


def _read_tensors(tensors_file: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(tensors_file), framework="pt") as f:
            save_id = (f.metadata() or {}).get("save_id")
            return {k: f.get_tensor(k) for k in f.keys()}, save_id
    except (FileNotFoundError, SafetensorError, OSError) as err:
        _raise_superseded_if_gone(tensors_file)
        raise MapFileError(f"{tensors_file} is corrupt: {err}") from err


def _manifest_files(files: dict) -> set[str]:
    """Every file name a manifest's "files" names (the voxel chunks are a list)."""
    names: set[str] = set()
    for value in files.values():
        names.update(value if isinstance(value, list) else [value])
    return names


def _read_voxels(path: Path, files: dict, empty: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str | None]:
    """The voxel state (chunks concatenated) and object tensors of a save, and the save id of its
    objects file (format 2), or of its one voxels file (format 1). `empty`: an empty state_dict()."""
    if "voxel_chunks" not in files:  # format 1: voxels and objects in one file
        return _read_tensors(path / files.get("voxels", "voxels.safetensors"))
    parts = [_read_tensors(path / name)[0] for name in files["voxel_chunks"]]
    state = {k: torch.cat([part[k] for part in parts]) if parts else v for k, v in empty.items()}
    objects, save_id = _read_tensors(path / files["objects"])
    state.update(objects)
    return state, save_id


def _raise_superseded_if_gone(data_file: Path) -> None:
    """A read failed: if the file is gone, a newer save removed it (retry), else it is corrupt."""
    if not data_file.exists():
        raise _Superseded(data_file)


def _read_tsdf(tsdf: TsdfVolume, tsdf_file: Path) -> None:
    try:
        tsdf.load(tsdf_file)
    except (ValueError, FileNotFoundError) as err:
        _raise_superseded_if_gone(tsdf_file)
        raise MapFileError(f"{tsdf_file} is corrupt: {err}") from err


def read_map_keyframes(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A saved map's keyframes (rgb (K, h, w, 3), depth, K, T, t; empty when it has none) and its
    mapper config as saved, without loading the voxels or the TSDF (MapFileError when unreadable)."""
    path = Path(path)
    meta = _read_meta(path)
    files = meta.get("files", {})
    keyframes = _read_keyframes(path / files["keyframes"]) if "keyframes" in files else {}
    return keyframes, dict(meta.get("config") or {})


def _read_keyframes(keyframes_file: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(keyframes_file) as data:
            return {k: data[k] for k in data.files}
    except Exception as err:  # zip/npz errors come in several types
        _raise_superseded_if_gone(keyframes_file)
        raise MapFileError(f"{keyframes_file} is corrupt: {err}") from err


def _object_tensors(objects: list[MapObject], feature_dim: int, text_dim: int) -> dict[str, torch.Tensor]:
    """Object arrays for the safetensors file: pooled features, point samples (concatenated, with
    counts) and text features."""
    counts = [len(o.sample) for o in objects]
    return {
        "object_features": torch.from_numpy(np.stack([o.feature for o in objects])).float() if objects
        else torch.zeros(0, feature_dim),
        "object_sample_counts": torch.tensor(counts, dtype=torch.int64),
        "object_samples": torch.from_numpy(np.concatenate([o.sample for o in objects])).double() if sum(counts)
        else torch.zeros(0, 3, dtype=torch.float64),
        "object_text_features": torch.from_numpy(np.stack([
            o.text_feature if o.text_feature is not None else np.zeros(text_dim) for o in objects])).float()
        if objects and text_dim else torch.zeros(len(objects), text_dim),
    }


def _objects_from_tensors(state: dict[str, torch.Tensor], count: int) -> tuple[list, list, list]:
    features = list(state["object_features"].numpy())
    counts = state["object_sample_counts"].tolist()
    if len(features) != count or len(counts) != count or sum(counts) != state["object_samples"].shape[0]:
        raise ValueError(f"expected {count} objects, found {len(features)} features and {len(counts)} samples")
    samples = list(np.split(state["object_samples"].numpy(), np.cumsum(counts)[:-1])) if count else []
    texts = [t if t.any() else None for t in state["object_text_features"].numpy()] if state["object_text_features"].numel() \
        else [None] * count
    return features, samples, texts
