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
import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from llm3d_core.config import config_from_dict, config_to_dict
from llm3d_core.device import resolve_device, validate_device_name
from llm3d_core.encoders import EncoderConfig, build_image_encoder
from llm3d_core.geometry import RGBDFrame, backproject, pixel_grid, transform_points, validate_frame
from llm3d_core.mapping.objects import MapObject, ObjectConfig, ObjectTracker
from llm3d_core.mapping.tsdf import TsdfConfig, TsdfVolume
from llm3d_core.mapping.voxel_features import VoxelFeatureMap, VoxelMapConfig
from llm3d_core.version import __version__

log = logging.getLogger(__name__)
MAP_FORMAT = 1


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
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    voxels: VoxelMapConfig = field(default_factory=VoxelMapConfig)
    tsdf: TsdfConfig = field(default_factory=TsdfConfig)
    objects: ObjectConfig = field(default_factory=ObjectConfig)

    def __post_init__(self) -> None:
        validate_device_name(self.device)
        if self.sample_stride < 1:
            raise ValueError(f"sample_stride must be >= 1, got {self.sample_stride}")
        if not 0 <= self.depth_min < self.depth_max:
            raise ValueError(f"need 0 <= depth_min < depth_max, got {self.depth_min}, {self.depth_max}")
        if self.objects_every < 0:
            raise ValueError(f"objects_every must be >= 0, got {self.objects_every}")


@dataclass
class FrameStats:
    points: int  # lifted samples with valid depth
    voxels_touched: int
    map_voxels: int
    seconds: float  # whole frame
    encode_seconds: float = 0.0  # 2D encoder
    fuse_seconds: float = 0.0  # lifting + voxel feature fusion
    tsdf_seconds: float = 0.0  # geometry


@dataclass
class QueryHit:
    object: MapObject
    score: float  # cosine similarity of the text and the object's text-aligned feature


class FeatureFusionMapper:
    """Fuses posed RGB-D frames; answers open-vocabulary queries; saves and loads atomically."""

    def __init__(self, config: MapperConfig | None = None) -> None:
        self.config = config or MapperConfig()
        self.device = resolve_device(self.config.device)
        self.encoder = build_image_encoder(dataclasses.replace(self.config.encoder, device=str(self.device)))
        self.voxels = VoxelFeatureMap(self.config.voxels, self.encoder.out_dim, self.device)
        self.tsdf = TsdfVolume(self.config.tsdf) if self.config.use_tsdf else None
        self.tracker = ObjectTracker(self.config.objects)
        self.frames = 0
        self._label_embeddings: torch.Tensor | None = None

    @property
    def text_dim(self) -> int:
        return self.encoder.text_dim

    # ---------------------------------------------------------------- fusion
    def integrate(self, frame: RGBDFrame) -> FrameStats:
        """Fuses one frame. A malformed frame raises FrameError and leaves the map unchanged."""
        t0 = time.perf_counter()
        depth_m, K, T = validate_frame(frame)
        c = self.config
        depth_m[(depth_m < c.depth_min) | (depth_m > c.depth_max)] = 0.0
        h, w = depth_m.shape
        v, u = pixel_grid(h, w, c.sample_stride)
        valid = depth_m[v, u] > 0
        v, u = v[valid], u[valid]
        touched, t_encode, t_fuse, t_tsdf = 0, 0.0, 0.0, 0.0
        if len(v):
            t1 = time.perf_counter()
            feature_map = self.encoder.encode(frame.rgb)  # (C, h', w')
            t2 = time.perf_counter()
            points = torch.from_numpy(transform_points(T, backproject(depth_m, K, v, u)))  # (N, 3)
            features = sample_features(feature_map, v, u, h, w)  # (N, C)
            colors = torch.from_numpy(frame.rgb[v, u].astype(np.float32) / 255.0)  # (N, 3)
            instance = None if frame.instance_ids is None else torch.from_numpy(frame.instance_ids[v, u].astype(np.int64))
            touched = self.voxels.integrate(points, features, colors, frame.timestamp, instance)
            t3 = time.perf_counter()
            if self.tsdf is not None:
                self.tsdf.integrate(depth_m, frame.rgb, K, T)
            t_encode, t_fuse, t_tsdf = t2 - t1, t3 - t2, time.perf_counter() - t3
        self.frames += 1
        if c.objects_every and self.frames % c.objects_every == 0:
            self.update_objects()
        return FrameStats(int(len(v)), touched, len(self.voxels), time.perf_counter() - t0, t_encode, t_fuse, t_tsdf)

    def reset(self) -> None:
        self.voxels.reset()
        if self.tsdf is not None:
            self.tsdf.reset()
        self.tracker.reset()
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

    def update_objects(self) -> list[MapObject]:
        """Recomputes object proposals from the current map (ids stay stable)."""
        slots = self.voxels.active_slots()
        centers = self.voxels.centers(slots).numpy()
        labels = self.label_embeddings() if self.text_dim else None
        return self.tracker.update(centers, self.voxels.features[slots], self.voxels.weights[slots],
                                   self.voxels.instance[slots].cpu().numpy(), self.config.voxels.voxel_size,
                                   labels, self.text_dim)

    @property
    def objects(self) -> list[MapObject]:
        return self.tracker.objects

    def query(self, text: str, top_k: int = 5) -> list[QueryHit]:
        """Objects ranked by similarity of `text` to their text-aligned features."""
        if not self.text_dim:
            raise RuntimeError("this map has no text-aligned features (encoder.text_aligned is false)")
        if not self.objects:
            self.update_objects()
        if not self.objects:
            return []
        query = self.embed_text([text])[0]  # (384,)
        feats = F.normalize(torch.from_numpy(np.stack([o.feature[-self.text_dim:] for o in self.objects])).float(), dim=1)
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
        """Writes the map folder atomically: a new folder is filled, then renamed into place."""
        from safetensors.torch import save_file

        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        try:
            state = self.voxels.state_dict()
            objects = self.tracker.state()
            state["object_features"] = torch.from_numpy(np.stack([o.feature for o in self.objects])) if self.objects \
                else torch.zeros(0, self.encoder.out_dim)
            save_file(state, str(tmp / "voxels.safetensors"))
            if self.tsdf is not None:
                self.tsdf.save(tmp / "tsdf.npz")
            meta = {"format": MAP_FORMAT, "llm3d_version": __version__, "frames": self.frames,
                    "feature_dim": self.encoder.out_dim, "text_dim": self.text_dim,
                    "config": config_to_dict(self.config), "tracker": objects}
            (tmp / "map.json").write_text(json.dumps(meta, indent=1))
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            if path.exists():
                path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "FeatureFusionMapper":
        """Loads a saved map; a missing or corrupt file raises MapFileError naming it."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        meta_file = path / "map.json"
        try:
            meta = json.loads(meta_file.read_text())
        except FileNotFoundError as err:
            raise MapFileError(f"no saved map at {path} ({meta_file} missing)") from err
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise MapFileError(f"{meta_file} is corrupt: {err}") from err
        if meta.get("format") != MAP_FORMAT:
            raise MapFileError(f"{meta_file}: map format {meta.get('format')!r}, this llm3d reads {MAP_FORMAT}")
        config = config_from_dict(MapperConfig, meta["config"])
        if device is not None:
            config = dataclasses.replace(config, device=device)
        mapper = cls(config)
        if mapper.encoder.out_dim != meta["feature_dim"]:
            raise MapFileError(f"{meta_file}: feature_dim {meta['feature_dim']} does not match the encoder's {mapper.encoder.out_dim}")
        tensors_file = path / "voxels.safetensors"
        try:
            state = load_file(str(tensors_file))
        except (FileNotFoundError, SafetensorError, OSError) as err:
            raise MapFileError(f"{tensors_file} is missing or corrupt: {err}") from err
        object_features = state.pop("object_features", torch.zeros(0))
        try:
            mapper.voxels.load_state_dict(state)
        except (KeyError, ValueError) as err:
            raise MapFileError(f"{tensors_file}: {err}") from err
        if mapper.tsdf is not None:
            tsdf_file = path / "tsdf.npz"
            try:
                mapper.tsdf.load(tsdf_file)
            except Exception as err:  # Open3D raises RuntimeError subclasses for any bad file
                raise MapFileError(f"{tsdf_file} is missing or corrupt: {err}") from err
        mapper.tracker.load_state(meta["tracker"], list(object_features.numpy()))
        mapper.frames = int(meta["frames"])
        return mapper


def sample_features(feature_map: torch.Tensor, v: np.ndarray, u: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Bilinear features (N, C) at pixels (v, u) of an (height, width) image from a (C, h, w) map."""
    # Pixel centres -> [-1, 1] with align_corners=False: the feature map covers the whole image.
    gx = (torch.from_numpy(u).float() + 0.5) / width * 2 - 1
    gy = (torch.from_numpy(v).float() + 0.5) / height * 2 - 1
    grid = torch.stack([gx, gy], dim=1).to(feature_map.device)[None, None]  # (1, 1, N, 2)
    sampled = F.grid_sample(feature_map[None].float(), grid, mode="bilinear", align_corners=False)  # (1, C, 1, N)
    return sampled[0, :, 0].T  # (N, C)
