"""The incremental feature-fusion mapper: posed RGB-D frames in, a queryable 3D map out.

3D-LLM (Hong et al. 2023, section 3.2) builds 3D features by lifting per-view 2D features onto
the scene's points and averaging over views, offline over all views. Here the same fusion runs
live: each frame is encoded, lifted at a pixel stride, and fused into a bounded sparse voxel map
(`VoxelFeatureMap`) as it arrives, while Open3D's TSDF (`TsdfVolume`) fuses the same depth for
surfaces, rendering and navigation. Objects (`ObjectTracker`) are proposed from the map and
queried with text in the MiniLM space.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from llm3d_core.config import DEFAULT_CONFIG, config_from_dict, config_to_dict, load_yaml, node_parameters
from llm3d_core.device import limited_torch_threads, resolve_device, validate_device_name
from llm3d_core.encoders import EncoderConfig, shared_image_encoder
from llm3d_core.geometry import FrameError, RGBDFrame, check_frame, pixel_grid
from llm3d_core.mapping.lifting import depth_in_range, lift_grid
from llm3d_core.mapping.objects import MapObject, ObjectConfig, ObjectTracker, assign_labels
from llm3d_core.mapping.semantics import CropConfig, KeyframeStore, ObjectSemantics
from llm3d_core.mapping.tsdf import TsdfConfig, TsdfVolume
from llm3d_core.mapping.voxel_features import BilinearFeatures, VoxelFeatureMap, VoxelMapConfig
from llm3d_core.version import __version__

log = logging.getLogger(__name__)
MAP_FORMAT = 2  # 2: voxels in chunk files (save() writes only changed ones); 1 still loads
TRAJECTORY_STEP = 0.05  # metres between recorded camera positions
TRAJECTORY_MAX = 20000  # recorded positions before the trajectory is thinned


class MapFileError(RuntimeError):
    """A saved map is missing, corrupt or incompatible; the message names the file."""


@dataclass
class MapperConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N (encoder and voxel features)
    sample_stride: int = 8  # lift one feature sample per stride x stride pixels
    depth_min: float = 0.1  # metres; nearer depth is invalid
    depth_max: float = 5.0  # metres; farther depth is invalid
    use_tsdf: bool = True  # fuse geometry too (surfaces, rendering, occupancy)
    objects_every: int = 10  # recompute objects every N frames (0: only on request)
    torch_threads: int = 0  # CPU threads for torch (0: torch's default). On a CPU shared with other
    # busy processes (a robot's computer), 1 is steadier: spinning threads otherwise stall each other.
    # torch threads while lifting and fusing a frame on the CPU (0: as torch_threads). Its tensor ops
    # are small; run on one thread, torch's OpenMP workers do not spin against Open3D's threads in the
    # TSDF integration right after (5 cm real frames: TSDF 4.8 -> 3.0 ms inside the step).
    fusion_threads: int = 1
    # Larger frames are refused by name (FrameError): a driver misconfigured to full sensor
    # resolution, or a corrupt header, must not stall fusion or exhaust memory. 4096 x 3072
    # (12.6 Mpx, Azure Kinect's largest colour mode) by default.
    max_image_pixels: int = 4096 * 3072
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    voxels: VoxelMapConfig = field(default_factory=VoxelMapConfig)
    tsdf: TsdfConfig = field(default_factory=TsdfConfig)
    objects: ObjectConfig = field(default_factory=ObjectConfig)
    crops: CropConfig = field(default_factory=CropConfig)

    def __post_init__(self) -> None:
        validate_device_name(self.device)
        if self.sample_stride < 1:
            raise ValueError(f"sample_stride must be >= 1, got {self.sample_stride}")
        if not 0 <= self.depth_min < self.depth_max:
            raise ValueError(f"need 0 <= depth_min < depth_max, got {self.depth_min}, {self.depth_max}")
        if self.objects_every < 0:
            raise ValueError(f"objects_every must be >= 0, got {self.objects_every}")
        if self.torch_threads < 0:
            raise ValueError(f"torch_threads must be >= 0, got {self.torch_threads}")
        if self.fusion_threads < 0:
            raise ValueError(f"fusion_threads must be >= 0, got {self.fusion_threads}")
        if self.max_image_pixels < 4:
            raise ValueError(f"max_image_pixels must be >= 4, got {self.max_image_pixels}")


@dataclass
class FrameStats:
    points: int  # lifted samples with valid depth
    voxels_touched: int
    map_voxels: int
    seconds: float  # whole frame
    encode_seconds: float = 0.0  # 2D encoder
    fuse_seconds: float = 0.0  # voxel feature fusion (the lifting pass runs before the encoder)
    tsdf_seconds: float = 0.0  # geometry


@dataclass
class QueryHit:
    object: MapObject
    score: float  # cosine similarity of the text and the object's text-aligned feature


class FeatureFusionMapper:
    """Fuses posed RGB-D frames; answers open-vocabulary queries; saves and loads atomically."""

    def __init__(self, config: MapperConfig | None = None) -> None:
        self.config = config or MapperConfig()
        if self.config.torch_threads:
            torch.set_num_threads(self.config.torch_threads)  # process-wide: torch has no per-object setting
        self.device = resolve_device(self.config.device)
        self.encoder = shared_image_encoder(dataclasses.replace(self.config.encoder, device=str(self.device)))
        self.voxels = VoxelFeatureMap(self.config.voxels, self.encoder.out_dim, self.device)
        self.tsdf = TsdfVolume(self.config.tsdf) if self.config.use_tsdf else None
        self.tracker = ObjectTracker(self.config.objects)
        self.use_crops = self.config.crops.enabled and self.encoder.text_dim > 0
        self.keyframes = KeyframeStore(self.config.crops)
        self.semantics = ObjectSemantics(self.config.crops)
        self.frames = 0
        # Camera positions (x, y, z), one per TRAJECTORY_STEP metres moved: where the robot has been is
        # floor it can drive on, also where the camera never saw that floor. Fused frames add theirs;
        # a live node also adds poses between them (record_position), from another thread.
        self.trajectory: list[tuple[float, float, float]] = []
        self._trajectory_lock = threading.Lock()
        self._label_embeddings: torch.Tensor | None = None
        self._saved_chunks: dict[int, str] = {}  # voxel chunk -> its file in this mapper's last save
        self._saved_to: Path | None = None  # the folder of that save

    @property
    def text_dim(self) -> int:
        return self.encoder.text_dim

    # ---------------------------------------------------------------- fusion
    def encode(self, frame: RGBDFrame) -> torch.Tensor:
        """The frame's 2D feature map (C, h, w); `integrate(frame, features)` can then skip the encoder."""
        return self.encoder.encode(frame.rgb)

    def integrate(self, frame: RGBDFrame, feature_map: torch.Tensor | None = None) -> FrameStats:
        """Fuses one frame. A malformed frame raises FrameError and leaves the map unchanged.

        feature_map: the frame's precomputed `encode(frame)` (e.g. encoded on another device or
        thread, or to time fusion alone); None encodes it here.
        """
        t0 = time.perf_counter()
        c = self.config
        K, T = check_frame(frame)
        if frame.depth.size > c.max_image_pixels:
            h, w = frame.depth.shape
            raise FrameError(f"frame {w}x{h} ({w * h / 1e6:.1f} Mpx) is larger than mapper.max_image_pixels "
                             f"({c.max_image_pixels / 1e6:.1f} Mpx); lower the camera resolution or raise the bound")
        depth_m = depth_in_range(frame.depth, frame.depth_scale, c.depth_min, c.depth_max)  # (H, W), 0 = invalid
        h, w = depth_m.shape
        v, u = lifting_grid(h, w, c.sample_stride)
        valid = int(np.count_nonzero(depth_m[v, u]))  # lifted samples
        touched, t_encode, t_fuse, t_tsdf = 0, 0.0, 0.0, 0.0
        if valid:
            t1 = time.perf_counter()
            if feature_map is None:
                feature_map = self.encoder.encode(frame.rgb)  # (C, h', w')
            elif feature_map.ndim != 3 or feature_map.shape[0] != self.encoder.out_dim:
                raise ValueError(f"feature_map must be ({self.encoder.out_dim}, h, w), got {tuple(feature_map.shape)}")
            t2 = time.perf_counter()
            with limited_torch_threads(c.fusion_threads if self.device.type == "cpu" else 0):
                selected, points, colors, index, weights = lift_grid(  # (N,), (N, 3), (N, 3), (N, 4), (N, 4)
                    depth_m, frame.rgb, K, T, v, u, *grid_taps(h, w, c.sample_stride, *feature_map.shape[1:]))
                features = taps_of(feature_map, torch.from_numpy(index).to(feature_map.device),
                                   torch.from_numpy(weights).to(feature_map.device))  # (N, C) as taps into the map
                instance = None
                if frame.instance_ids is not None:
                    instance = torch.from_numpy(frame.instance_ids[v[selected], u[selected]].astype(np.int64))
                touched = self.voxels.integrate(torch.from_numpy(points), features, torch.from_numpy(colors),
                                                frame.timestamp, instance)
                t3 = time.perf_counter()
                if self.tsdf is not None:
                    self.tsdf.integrate(depth_m, frame.rgb, K, T)
                if self.use_crops:
                    self.keyframes.offer(frame.rgb, depth_m, K, T, frame.timestamp)
            t_encode, t_fuse, t_tsdf = t2 - t1, t3 - t2, time.perf_counter() - t3
        self.frames += 1
        self.record_position(T[:3, 3])
        if c.objects_every and self.frames % c.objects_every == 0:
            self.update_objects(semantic=False)
        return FrameStats(valid, touched, len(self.voxels), time.perf_counter() - t0, t_encode, t_fuse, t_tsdf)

    def record_position(self, position: np.ndarray) -> None:
        """Adds a camera position (3,) to the driven path when it is TRAJECTORY_STEP from the last one.

        Thread-safe: a ROS node records poses from TF between fused frames, so the path has no
        gaps when fusion runs slower than the robot moves (navigation takes the path as free floor).
        """
        p = tuple(float(v) for v in position)
        with self._trajectory_lock:
            if not self.trajectory or np.linalg.norm(np.subtract(p, self.trajectory[-1])) >= TRAJECTORY_STEP:
                self.trajectory.append(p)
                if len(self.trajectory) > TRAJECTORY_MAX:  # bounded: keep every other pose of a long run
                    self.trajectory = self.trajectory[::2]

    def visited_path(self) -> list[tuple[float, float, float]]:
        """A copy of the driven path's (x, y, z) positions."""
        with self._trajectory_lock:
            return list(self.trajectory)

    def visited_xy(self) -> np.ndarray:
        """(M, 2) top-down camera positions of the driven path."""
        return np.asarray(self.visited_path(), dtype=np.float64).reshape(-1, 3)[:, :2]

    def reset(self) -> None:
        with self._trajectory_lock:
            self.trajectory = []
        self.voxels.reset()
        if self.tsdf is not None:
            self.tsdf.reset()
        self.tracker.reset()
        self.keyframes.reset()
        self.semantics.reset()
        self.frames = 0

    # ---------------------------------------------------------------- objects and queries
    def label_embeddings(self) -> torch.Tensor:
        """MiniLM embeddings (V, 384) of the object vocabulary (computed once)."""
        if self._label_embeddings is None:
            self._label_embeddings = self.embed_text(list(self.config.objects.vocabulary))
        return self._label_embeddings

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        from llm3d_core.encoders.text import get_text_encoder

        return get_text_encoder("cpu").encode(texts)  # (N, 384)

    def update_objects(self, semantic: bool = True) -> list[MapObject]:
        """Recomputes object proposals from the current map (ids stay stable), then what they are.

        With instance ids in the map (simulator frames), objects are the instances' voxels.
        Otherwise they are clusters of the TSDF surface points (finer than the feature voxels),
        or of the voxel centres when the TSDF is off; each point takes its voxel's feature.
        Each object's text feature comes from keyframe crops where it is visible (see
        mapping.semantics), else from its pooled voxel features; labels follow from it.

        semantic=False skips new crops (the periodic update during mapping stays cheap): objects
        unchanged since their crops were computed keep them, others use pooled features until the
        next semantic update (`query`, `save` and `refresh_semantics` run one).
        """
        n_sample = self.config.crops.sample_points
        slots = self.voxels.active_slots()
        instance = self.voxels.instance[slots].cpu().numpy()
        if (instance >= 0).any() or self.tsdf is None:
            points, cell = self.voxels.centers(slots).numpy(), self.config.voxels.voxel_size
            objects = self.tracker.update(points, self.voxels.features[slots], self.voxels.weights[slots],
                                          instance if (instance >= 0).any() else None, cell, n_sample)
        else:
            cell = self.config.tsdf.voxel_size
            points = self.tsdf.surface_points(cell)  # (P, 3)
            point_slots, found = self.voxels.lookup(torch.from_numpy(points), neighbors=True)
            points, point_slots = points[found.cpu().numpy()], point_slots[found]
            objects = self.tracker.update(points, self.voxels.features[point_slots], self.voxels.weights[point_slots],
                                          None, cell, n_sample)
        if self.text_dim:
            if self.use_crops:
                self.semantics.refresh(objects, {o.id: o.sample for o in objects}, self.keyframes.keyframes,
                                       self.encoder, self.text_dim, compute=semantic)
            for obj in objects:
                if obj.text_feature is None:
                    obj.text_feature = F.normalize(torch.from_numpy(obj.feature[-self.text_dim:]).float(), dim=0).numpy()
            assign_labels(objects, self.label_embeddings(), list(self.config.objects.vocabulary),
                          self.config.objects.label_temperature)
        return objects

    def refresh_semantics(self) -> list[MapObject]:
        """Objects with up-to-date crop semantics and labels (computes only what changed)."""
        stale = not self.objects or any(o.text_feature is None for o in self.objects)
        if stale or (self.use_crops and not self.semantics.covers(self.objects)):
            self.update_objects(semantic=True)
        return self.objects

    def colored_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The map as points (N, 3) and colours (N, 3) in [0, 1]: the TSDF surface when fused
        (denser and sharper), else the feature voxel centres."""
        if self.tsdf is not None:
            cloud = self.tsdf.point_cloud()
            if cloud.point.positions.shape[0]:
                return cloud.point.positions.numpy().astype(np.float64), cloud.point.colors.numpy().astype(np.float64)
        slots = self.voxels.active_slots()
        return self.voxels.centers(slots).numpy(), self.voxels.colors[slots].cpu().numpy()

    def object_colors(self, obj: MapObject) -> dict[str, float]:
        """The colour terms `obj` shows (llm3d_core.colors.color_shares): its sample points' voxel
        colours; {} when none of them is in the feature map."""
        from llm3d_core.colors import color_shares

        if not len(obj.sample):
            return {}
        slots, found = self.voxels.lookup(torch.from_numpy(np.asarray(obj.sample, dtype=np.float64)), neighbors=True)
        return color_shares(self.voxels.colors[slots[found]].cpu().numpy())  # (S, 3) in [0, 1]

    @property
    def objects(self) -> list[MapObject]:
        return self.tracker.objects

    def query(self, text: str, top_k: int = 5) -> list[QueryHit]:
        """Objects ranked by similarity of `text` to their text-aligned features."""
        if not self.text_dim:
            raise RuntimeError("this map has no text-aligned features (encoder.text_aligned is false)")
        self.refresh_semantics()
        if not self.objects:
            return []
        query = self.embed_text([text])[0]  # (384,)
        feats = torch.from_numpy(np.stack([o.text_feature for o in self.objects])).float()  # (K, 384) unit
        scores = feats @ query  # (K,)
        order = torch.argsort(scores, descending=True)[:top_k]
        return [QueryHit(self.objects[i], float(scores[i])) for i in order]

    def relevancy(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Voxel centres (M, 3) and the cosine relevancy (M,) of each voxel to `text`."""
        if not self.text_dim:
            raise RuntimeError("this map has no text-aligned features (encoder.text_aligned is false)")
        slots = self.voxels.active_slots()
        text_feats = F.normalize(self.voxels.features[slots, -self.text_dim:].float(), dim=1)  # (M, 384)
        scores = text_feats @ self.embed_text([text])[0].to(text_feats.device)
        return self.voxels.centers(slots).numpy(), scores.cpu().numpy()

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Writes the map folder so that a reader never sees a partial or mixed save.

        Data files are immutable and named by a fresh save id: the voxels in chunks of
        CHUNK_SLOTS slots (voxels-<id>-<chunk>.safetensors), objects-<id>.safetensors,
        tsdf-<id>.npz, keyframes-<id>.npz. A save by the same mapper into the same folder writes
        only the voxel chunks that changed since its last save and names the others' existing
        files again, so a live map's save costs about what changed, not the whole map.
        `map.json` names the files and is replaced last, in one atomic rename, which commits the
        save. Files named by the save before stay until the next save (a reader that took the old
        manifest can still finish); files no manifest names are removed.
        """
        from safetensors.torch import save_file

        path = Path(path)
        if self.frames:
            self.refresh_semantics()
        path.mkdir(parents=True, exist_ok=True)
        try:
            previous = _manifest_files(json.loads((path / "map.json").read_text()).get("files", {}))
        except (OSError, ValueError, AttributeError):
            previous = set()
        save_id = uuid.uuid4().hex[:12]
        dirty = self.voxels.take_dirty()  # None: everything (first save, a load, or another folder)
        reusable = self._saved_chunks if self._saved_to == path.resolve() and dirty is not None else {}
        files: dict[str, Any] = {"objects": f"objects-{save_id}.safetensors", "tsdf": f"tsdf-{save_id}.npz",
                                 "keyframes": f"keyframes-{save_id}.npz"}
        chunks: dict[int, str] = {}
        written: list[Path] = []
        try:
            active = self.voxels.active_chunks()
            for chunk in active:  # unchanged chunks keep the file of an earlier save, if it is still there
                if chunk in reusable and chunk not in dirty and (path / reusable[chunk]).is_file():
                    chunks[chunk] = reusable[chunk]
            for chunk, state in self.voxels.chunk_states([c for c in active if c not in chunks]):
                chunks[chunk] = f"voxels-{save_id}-{chunk}.safetensors"
                written.append(path / chunks[chunk])
                save_file(state, str(written[-1]), metadata={"save_id": save_id})
            files["voxel_chunks"] = [chunks[c] for c in active]
            written.append(path / files["objects"])
            save_file(_object_tensors(self.objects, self.encoder.out_dim, self.text_dim), str(written[-1]),
                      metadata={"save_id": save_id})
            keyframes = self.keyframes.state()
            if keyframes:
                written.append(path / files["keyframes"])
                np.savez_compressed(written[-1], **keyframes)
            else:
                del files["keyframes"]
            if self.tsdf is not None:
                written.append(path / files["tsdf"])
                self.tsdf.save(written[-1])
            else:
                del files["tsdf"]
            meta = {"format": MAP_FORMAT, "save_id": save_id, "files": files, "llm3d_version": __version__,
                    "frames": self.frames, "feature_dim": self.encoder.out_dim, "text_dim": self.text_dim,
                    "config": config_to_dict(self.config), "tracker": self.tracker.state(),
                    "trajectory": [[round(v, 4) for v in p] for p in self.visited_path()]}
            manifest_tmp = path / f".map.json.{save_id}.tmp"
            written.append(manifest_tmp)
            manifest_tmp.write_text(json.dumps(meta, indent=1))
            os.replace(manifest_tmp, path / "map.json")  # the commit point
        except BaseException:
            for f in written:
                f.unlink(missing_ok=True)
            self.voxels.forget_saved()  # what changed since the last committed save is unknown now
            self._saved_chunks, self._saved_to = {}, None
            raise
        self._saved_chunks, self._saved_to = chunks, path.resolve()
        keep = _manifest_files(files) | previous | {"map.json"}
        for old in path.iterdir():
            if old.name not in keep and (old.name.split("-")[0] in ("voxels", "tsdf", "keyframes", "objects")
                                         or old.name.startswith(".map.json.")):
                old.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, attempts: int = 5) -> "FeatureFusionMapper":
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
                mapper = cls._from_meta(meta, device)
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

    @classmethod
    def _from_meta(cls, meta: dict, device: str | None) -> "FeatureFusionMapper":
        config = config_from_dict(MapperConfig, meta["config"])
        if device is not None:
            config = dataclasses.replace(config, device=device)
        mapper = cls(config)
        if mapper.encoder.out_dim != meta["feature_dim"]:
            raise MapFileError(f"map.json: feature_dim {meta['feature_dim']} does not match the encoder's {mapper.encoder.out_dim}")
        return mapper


def load_mapper_config(path: str | Path | None = None, device: str | None = None) -> MapperConfig:
    """The `llm3d_mapper: ros__parameters: mapper:` section of a YAML file (default launch/llm3d.yaml),
    as the CLI, data generation and the benchmarks read it; `device` overrides its device."""
    params = node_parameters(load_yaml(path or DEFAULT_CONFIG), "llm3d_mapper").get("mapper", {})
    config = config_from_dict(MapperConfig, params, "llm3d_mapper.mapper")
    return dataclasses.replace(config, device=device) if device else config


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


def bilinear_taps(feature_map: torch.Tensor, v: np.ndarray, u: np.ndarray, height: int, width: int) -> BilinearFeatures:
    """The bilinear features at pixels (v, u) of an (height, width) image from a (C, h, w) map, as taps.

    The same sampling as `sample_features` (pixel centres, align_corners=False, zero outside the
    map): sample_features(...) == bilinear_taps(...).dense() up to float rounding.
    """
    _, fh, fw = feature_map.shape
    index, weights = tap_table(v, u, height, width, fh, fw)
    return taps_of(feature_map, index.to(feature_map.device), weights.to(feature_map.device))


@functools.lru_cache(maxsize=8)  # a camera's image size rarely changes
def lifting_grid(height: int, width: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The mapper's lifting grid (geometry.pixel_grid), cached and read-only."""
    v, u = pixel_grid(height, width, stride)
    v.flags.writeable = u.flags.writeable = False
    return v, u


@functools.lru_cache(maxsize=8)
def grid_taps(height: int, width: int, stride: int, fh: int, fw: int) -> tuple[np.ndarray, np.ndarray]:
    """tap_table of the whole lifting grid into an (fh, fw) feature map, as read-only arrays; cached."""
    index, weights = (t.numpy() for t in tap_table(*lifting_grid(height, width, stride), height, width, fh, fw))
    index.flags.writeable = weights.flags.writeable = False
    return index, weights


def tap_table(v: np.ndarray, u: np.ndarray, height: int, width: int, fh: int, fw: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear taps of pixels (v, u) of an (height, width) image into an (fh, fw) feature map:
    row indices (N, 4) int64 into the map's h*w pixels and weights (N, 4) float32 (0 outside)."""
    x = (u.astype(np.float64) + 0.5) * fw / width - 0.5  # feature-map coordinates of the pixel centres
    y = (v.astype(np.float64) + 0.5) * fh / height - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    dx, dy = x - x0, y - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    index, weights = [], []
    for oy, ox, w in ((0, 0, (1 - dx) * (1 - dy)), (0, 1, dx * (1 - dy)), (1, 0, (1 - dx) * dy), (1, 1, dx * dy)):
        xx, yy = x0 + ox, y0 + oy
        inside = (xx >= 0) & (xx < fw) & (yy >= 0) & (yy < fh)
        index.append(np.clip(yy, 0, fh - 1) * fw + np.clip(xx, 0, fw - 1))
        weights.append(np.where(inside, w, 0.0))
    return torch.from_numpy(np.stack(index, 1)), torch.from_numpy(np.stack(weights, 1).astype(np.float32))


def taps_of(feature_map: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> BilinearFeatures:
    """BilinearFeatures of a (C, h, w) map for precomputed taps (tap_table)."""
    c, fh, fw = feature_map.shape
    rows = feature_map.reshape(c, fh * fw).T  # (h*w, C); sparse.mm reads it as it is
    return BilinearFeatures(rows, index, weights)


def sample_features(feature_map: torch.Tensor, v: np.ndarray, u: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Bilinear features (N, C) at pixels (v, u) of an (height, width) image from a (C, h, w) map."""
    # Pixel centres -> [-1, 1] with align_corners=False: the feature map covers the whole image.
    gx = (torch.from_numpy(u).float() + 0.5) / width * 2 - 1
    gy = (torch.from_numpy(v).float() + 0.5) / height * 2 - 1
    grid = torch.stack([gx, gy], dim=1).to(feature_map.device)[None, None]  # (1, 1, N, 2)
    sampled = F.grid_sample(feature_map[None].float(), grid, mode="bilinear", align_corners=False)  # (1, C, 1, N)
    return sampled[0, :, 0].T  # (N, C)
