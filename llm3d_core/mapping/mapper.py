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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from llm3d_core.config import DEFAULT_CONFIG, config_from_dict, load_yaml, node_parameters
from llm3d_core.device import limited_torch_threads, resolve_device, validate_device_name
from llm3d_core.encoders import EncoderConfig, shared_image_encoder
from llm3d_core.geometry import FrameError, RGBDFrame, check_frame
from llm3d_core.mapping.lifting import depth_in_range, lift_grid
# MapFileError is what callers catch around FeatureFusionMapper.load, so it is importable from here too.
from llm3d_core.mapping.map_files import MapFileError, load_map, save_map  # noqa: F401
from llm3d_core.mapping.objects import MapObject, ObjectConfig, ObjectTracker, assign_labels
from llm3d_core.mapping.semantics import CropConfig, KeyframeStore, ObjectSemantics
from llm3d_core.mapping.taps import grid_taps, lifting_grid, taps_of
from llm3d_core.mapping.tsdf import TsdfConfig, TsdfVolume
from llm3d_core.mapping.voxel_features import VoxelFeatureMap, VoxelMapConfig

TRAJECTORY_STEP = 0.05  # metres between recorded camera positions
TRAJECTORY_MAX = 20000  # recorded positions before the trajectory is thinned


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

    def object_rgb(self, obj: MapObject) -> np.ndarray:
        """The fused colours (S, 3) in [0, 1] of the voxels at `obj`'s sample points (S may be 0)."""
        if not len(obj.sample):
            return np.zeros((0, 3))
        slots, found = self.voxels.lookup(torch.from_numpy(np.asarray(obj.sample, dtype=np.float64)), neighbors=True)
        return self.voxels.colors[slots[found]].cpu().numpy()

    def object_colors(self, obj: MapObject) -> dict[str, float]:
        """The colour terms `obj` shows (llm3d_core.colors.color_shares): its sample points' voxel
        colours; {} when none of them is in the feature map."""
        from llm3d_core.colors import color_shares

        return color_shares(self.object_rgb(obj))

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
        """Writes the map folder atomically (map_files.save_map: a reader never sees a partial save)."""
        return save_map(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, attempts: int = 5) -> "FeatureFusionMapper":
        """Loads a saved map (map_files.load_map); a missing or corrupt file raises MapFileError naming it."""
        return load_map(cls, path, device, attempts)


def load_mapper_config(path: str | Path | None = None, device: str | None = None) -> MapperConfig:
    """The `llm3d_mapper: ros__parameters: mapper:` section of a YAML file (default launch/llm3d.yaml),
    as the CLI, data generation and the benchmarks read it; `device` overrides its device."""
    params = node_parameters(load_yaml(path or DEFAULT_CONFIG), "llm3d_mapper").get("mapper", {})
    config = config_from_dict(MapperConfig, params, "llm3d_mapper.mapper")
    return dataclasses.replace(config, device=device) if device else config
