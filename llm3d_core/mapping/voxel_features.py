"""Sparse voxel feature map: per-voxel running means of lifted 2D features.

This is 3D-LLM's feature-fusion step (Hong et al. 2023, section 3.2, "3D feature extraction":
2D features of multi-view images are lifted into 3D and averaged per point), made incremental:
each frame's features are fused into the voxels they land in as the frame arrives.

Storage: a compiled hash map (voxel index -> buffer slot, `mapping.voxel_hash`) on the CPU and
torch tensors on any device, indexed by the slot. Work per frame is proportional to the frame
(hash look-ups and index ops on the frame's voxels), never to the map.

Per voxel: feature mean (C,), colour mean (3,), fusion weight (capped), number of frames that
observed it, last-seen time, and a running-majority instance id.

Memory is bounded by `max_voxels`. Eviction rule: when a frame would bring more new voxels than
fit, the least recently seen voxels (oldest `last_seen`; among equals, fewest observations)
that the current frame does not touch are erased first, plus `evict_slack` of the budget so that
eviction does not run on every frame. The hash map's capacity is the budget, so buffer slots
never move; freed slots are reused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from llm3d_core.device import resolve_device
from llm3d_core.mapping import fused_update
from llm3d_core.mapping.voxel_hash import EMPTY, OFFSET, VoxelHash, pack, unpack, voxel_coords


@dataclass
class VoxelMapConfig:
    voxel_size: float = 0.05  # metres
    max_voxels: int = 200_000  # memory budget (voxels); see the eviction rule above
    weight_cap: float = 50.0  # running-mean weight cap: new observations keep >= 1/(cap+1) influence
    evict_slack: float = 0.05  # fraction of max_voxels freed in addition when eviction runs
    fp16: bool = False  # store features in float16 (half the memory)
    cpu_kernel: bool = True  # float32 maps on the CPU update in one compiled pass (mapping.fused_update)

    def __post_init__(self) -> None:
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {self.voxel_size}")
        if self.max_voxels < 1:
            raise ValueError(f"max_voxels must be >= 1, got {self.max_voxels}")
        if not self.weight_cap >= 1:
            raise ValueError(f"weight_cap must be >= 1, got {self.weight_cap}")
        if not 0 <= self.evict_slack < 1:
            raise ValueError(f"evict_slack must be in [0, 1), got {self.evict_slack}")


@dataclass
class BilinearFeatures:
    """N samples' features given as bilinear taps into a feature map, not as an (N, C) array.

    sample n's feature is sum_k weights[n, k] * rows[index[n, k]]. Because both the bilinear
    interpolation and the per-voxel sum are linear, a frame's per-voxel feature sums are one sparse
    (U x P) @ (P x C) product: no (N, C) array is built, and the feature map is read row by row
    (grid_sample followed by index_add reads it channel-plane by channel-plane, and scatters
    512-wide rows), which made feature fusion cost as much as the TSDF integration.
    """

    rows: torch.Tensor  # (P, C) the feature map's pixels as rows (P = h * w)
    index: torch.Tensor  # (N, 4) int64 rows of each sample's four taps
    weights: torch.Tensor  # (N, 4) float32 bilinear weights (0 for taps outside the map)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.index.shape[0], self.rows.shape[1])

    def dense(self) -> torch.Tensor:
        """(N, C) the samples' features (tests and small inputs)."""
        return (self.rows[self.index] * self.weights[..., None]).sum(1)


def voxel_sums(features: torch.Tensor | BilinearFeatures, inverse: torch.Tensor, num_voxels: int,
               scale: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """(U, C) float32 per-voxel sums of the samples' features; inverse (N,) maps samples to voxels.

    scale (N,) multiplies each sample first; out (U, C) float32, if given, is added to (in place
    for dense features). Both let the fusion step build its running means in one pass over (U, C).
    """
    if out is None:
        out = torch.zeros(num_voxels, features.shape[1], device=inverse.device)
    if isinstance(features, torch.Tensor):
        features = features.to(inverse.device, torch.float32)
        return out.index_add_(0, inverse, features if scale is None else features * scale[:, None])
    rows = features.rows.to(inverse.device, torch.float32)
    weights = features.weights.to(inverse.device, torch.float32)  # (N, taps)
    if scale is not None:
        weights = weights * scale[:, None]
    taps = weights.shape[1]
    ij = torch.stack([inverse[:, None].expand(-1, taps).reshape(-1), features.index.to(inverse.device).reshape(-1)])
    A = torch.sparse_coo_tensor(ij, weights.reshape(-1), (num_voxels, rows.shape[0]),
                                check_invariants=False)  # (U, P); duplicates add up
    return torch.sparse.addmm(out, A, rows)  # (U, C) = out + A @ rows


CHUNK_SLOTS = 8192  # slots per saved chunk file: a save rewrites only chunks changed since the last one


class VoxelFeatureMap:
    """Fuses (point, feature, colour) samples into a bounded sparse voxel grid."""

    def __init__(self, config: VoxelMapConfig, feature_dim: int, device: str | torch.device = "cpu") -> None:
        if feature_dim < 1:
            raise ValueError(f"feature_dim must be >= 1, got {feature_dim}")
        self.config = config
        self.feature_dim = feature_dim
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.reset()

    def reset(self) -> None:
        """Empties the map (keeps config and device)."""
        self._hash = VoxelHash(self.config.max_voxels)
        self._rows = 0
        feature_dtype = torch.float16 if self.config.fp16 else torch.float32
        self.features = torch.zeros(0, self.feature_dim, dtype=feature_dtype, device=self.device)  # (S, C)
        self.colors = torch.zeros(0, 3, device=self.device)  # (S, 3) in [0, 1]
        self.weights = torch.zeros(0, device=self.device)  # (S,)
        self.observations = torch.zeros(0, dtype=torch.int32, device=self.device)  # (S,)
        self.last_seen = torch.zeros(0, dtype=torch.float64, device=self.device)  # (S,)
        self.instance = torch.full((0,), -1, dtype=torch.int64, device=self.device)  # (S,)
        self._instance_votes = torch.zeros(0, dtype=torch.int32, device=self.device)  # (S,)
        self.evicted_total = 0
        # Chunks (slot // CHUNK_SLOTS) changed since take_dirty(); None: all of them (nothing saved yet
        # from this layout). Slots are handed out in order of first sight, so a robot revisiting a room
        # touches the chunks of when it first saw it, not the whole map.
        self._dirty: set[int] | None = None

    # ---------------------------------------------------------------- storage
    def __len__(self) -> int:
        return len(self._hash)

    def _ensure_rows(self, rows: int) -> None:
        """Grows the slot tensors geometrically, never beyond the budget."""
        if rows <= self._rows:
            return
        new = min(max(rows, 2 * self._rows, 1024), self.config.max_voxels)
        pad = new - self._rows

        def grow(t: torch.Tensor, fill: float) -> torch.Tensor:
            extra = torch.full((pad, *t.shape[1:]), fill, dtype=t.dtype, device=t.device)
            return torch.cat([t, extra])

        self.features = grow(self.features, 0.0)
        self.colors = grow(self.colors, 0.0)
        self.weights = grow(self.weights, 0.0)
        self.observations = grow(self.observations, 0)
        self.last_seen = grow(self.last_seen, 0.0)
        self.instance = grow(self.instance, -1)
        self._instance_votes = grow(self._instance_votes, 0)
        self._rows = new

    def active_slots(self) -> torch.Tensor:
        """Slots (M,) int64 of the voxels in the map, on the map's device."""
        return torch.from_numpy(self._hash.active_slots()).to(self.device)

    def keys_of(self, slots: torch.Tensor) -> torch.Tensor:
        """Voxel indices (M, 3) int32 of the given slots (CPU)."""
        return torch.from_numpy(unpack(self._hash.keys_of(slots.cpu().numpy())))

    def lookup(self, points: torch.Tensor, neighbors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots (N,) int64 of the voxels holding world points (N, 3), and a found mask (N,).

        neighbors: a point whose own voxel is empty takes the nearest occupied voxel of the 26
        around it (surfaces from another source, e.g. the TSDF, sit up to a voxel off the samples).
        """
        n = points.shape[0]
        slots = torch.zeros(n, dtype=torch.int64)
        found = torch.zeros(n, dtype=torch.bool)
        if n == 0 or len(self) == 0:  # nothing to find
            return slots.to(self.device), found.to(self.device)
        coords = voxel_coords(points.cpu().numpy(), self.config.voxel_size)  # (N, 3)
        offsets = [(0, 0, 0)]
        if neighbors:
            grid = [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)]
            offsets += sorted(grid, key=lambda o: sum(abs(x) for x in o))  # face, edge, then corner neighbours
        for offset in offsets:
            todo = torch.nonzero(~found).flatten()
            if todo.numel() == 0:
                break
            shifted = coords[todo.numpy()] + np.asarray(offset)
            inside = (np.abs(shifted) < OFFSET).all(1)  # a neighbour past the key range holds nothing
            hit_slots = np.full(len(shifted), EMPTY, np.int64)
            hit_slots[inside] = self._hash.find(pack(shifted[inside]))
            hit = torch.from_numpy(hit_slots != EMPTY)
            slots[todo[hit]] = torch.from_numpy(hit_slots)[hit]
            found[todo[hit]] = True
        return slots.to(self.device), found.to(self.device)

    def centers(self, slots: torch.Tensor | None = None) -> torch.Tensor:
        """World coordinates (M, 3) of voxel centres."""
        slots = self.active_slots() if slots is None else slots
        return (self.keys_of(slots).to(torch.float64) + 0.5) * self.config.voxel_size

    # ---------------------------------------------------------------- fusion
    def integrate(self, points: torch.Tensor, features: torch.Tensor | BilinearFeatures, colors: torch.Tensor,
                  timestamp: float, instance: torch.Tensor | None = None) -> int:
        """Fuses N samples observed at `timestamp`; returns how many voxels they touched.

        points (N, 3) world metres, features (N, C) or their BilinearFeatures taps, colors (N, 3)
        in [0, 1], instance (N,) int64 or None.
        """
        n = points.shape[0]
        if features.shape != (n, self.feature_dim) or colors.shape != (n, 3):
            raise ValueError(f"expected features ({n}, {self.feature_dim}) and colors ({n}, 3), "
                             f"got {tuple(features.shape)} and {tuple(colors.shape)}")
        if instance is not None and instance.shape != (n,):
            raise ValueError(f"expected instance ({n},), got {tuple(instance.shape)}")
        if n == 0:
            return 0
        points_np = np.ascontiguousarray(points.detach().cpu().numpy(), dtype=np.float64)
        self._make_room(points_np)
        slots_np, inverse_np = self._hash.assign(points_np, self.config.voxel_size)  # (U,), (N,)
        u = slots_np.shape[0]
        self._mark_dirty(slots_np)
        self._ensure_rows(self._hash.high_water)
        if self._use_kernel(features):
            labels = np.zeros(0, np.int64) if instance is None else instance.cpu().numpy().astype(np.int64)
            fused_update.fuse_frame(
                self.features.numpy(), self.colors.numpy(), self.weights.numpy(), self.observations.numpy(),
                self.last_seen.numpy(), self.instance.numpy(), self._instance_votes.numpy(), slots_np, inverse_np,
                np.ascontiguousarray(features.index.numpy(), dtype=np.int64),
                np.ascontiguousarray(features.weights.numpy(), dtype=np.float32),
                np.ascontiguousarray(features.rows.numpy(), dtype=np.float32),
                np.ascontiguousarray(colors.numpy(), dtype=np.float32), labels, float(timestamp),
                float(self.config.weight_cap))
            return u
        slots = torch.from_numpy(slots_np).to(self.device)
        inverse = torch.from_numpy(inverse_np).to(self.device)

        # Running weighted mean, one pass over the frame's (U, C) rows:
        #   new = old * w_old / total + sum(samples) / total,  total = w_old + count.
        # A new or recycled slot has weight 0, so its old (finite) content is multiplied by 0.
        count = torch.bincount(inverse, minlength=u).to(torch.float32)  # (U,)
        is_new = self.observations.index_select(0, slots) == 0
        w_old = torch.where(is_new, 0.0, self.weights.index_select(0, slots))  # (U,)
        total = w_old + count
        keep = (w_old / total)[:, None]  # (U, 1)
        share = total.reciprocal()[inverse]  # (N,) each sample's share of its voxel's new mean
        old = self.features.index_select(0, slots).float().mul_(keep)  # (U, C)
        feat = voxel_sums(features, inverse, u, scale=share, out=old)
        self.features.index_copy_(0, slots, feat.to(self.features.dtype))
        old_colors = self.colors.index_select(0, slots).mul_(keep)
        self.colors.index_copy_(0, slots, voxel_sums(colors.to(self.device, torch.float32), inverse, u, share, old_colors))
        self.weights[slots] = total.clamp(max=self.config.weight_cap)
        self.observations[slots] = torch.where(is_new, 1, self.observations[slots] + 1).to(torch.int32)
        self.last_seen[slots] = float(timestamp)
        if instance is not None:
            self._vote_instances(slots, inverse, instance.to(self.device), is_new)
        elif is_new.any():
            self.instance[slots[is_new]] = -1
            self._instance_votes[slots[is_new]] = 0
        return u

    def _use_kernel(self, features: torch.Tensor | BilinearFeatures) -> bool:
        """The one-pass compiled update (mapping.fused_update) serves float32 maps on the CPU fed
        bilinear taps; everything else takes the torch ops."""
        return (self.config.cpu_kernel and self.device.type == "cpu"
                and self.features.dtype == torch.float32 and isinstance(features, BilinearFeatures)
                and features.rows.device.type == "cpu")

    def _vote_instances(self, slots: torch.Tensor, inverse: torch.Tensor, instance: torch.Tensor, is_new: torch.Tensor) -> None:
        """Running-majority (Boyer-Moore) instance id per voxel; -1 means unlabeled."""
        # The frame's label per voxel: the label of its first sample (voxels are small).
        first = torch.full((slots.shape[0],), instance.shape[0], dtype=torch.int64, device=self.device)
        first.scatter_reduce_(0, inverse, torch.arange(instance.shape[0], device=self.device), reduce="amin")
        label = instance[first]  # (U,)
        current = torch.where(is_new, -1, self.instance[slots])
        votes = torch.where(is_new, 0, self._instance_votes[slots])
        same = label == current
        votes = torch.where(same, votes + 1, votes - 1)
        replace = votes <= 0
        self.instance[slots] = torch.where(replace, label, current)
        self._instance_votes[slots] = torch.where(replace, 1, votes).to(torch.int32)

    def _make_room(self, points: np.ndarray) -> None:
        """Evicts least recently seen voxels when the frame's new voxels (N, 3 points) would exceed the budget."""
        size, budget = len(self), self.config.max_voxels
        if size + points.shape[0] <= budget:
            return  # room even if every sample lands in a new voxel: no look-up needed
        keys = np.unique(pack(voxel_coords(points, self.config.voxel_size)))  # refuses bad points first
        found = self._hash.find(keys)
        new = int((found == EMPTY).sum())
        if size + new <= budget:
            return
        if new > budget:
            raise ValueError(f"one frame touches {new} new voxels, more than max_voxels={budget}; "
                             "raise max_voxels or the voxel size")
        excess = size + new - budget + int(self.config.evict_slack * budget)
        slots = self.active_slots()
        # Protect the voxels this frame touches: they are about to be refreshed.
        protected = torch.from_numpy(np.isin(slots.cpu().numpy(), found[found != EMPTY])).to(self.device)
        # Oldest first; observation count breaks ties (scaled well below one time unit).
        age_key = self.last_seen[slots] + 1e-9 * self.observations[slots].double()
        age_key = torch.where(protected, torch.inf, age_key)
        excess = min(excess, int((~protected).sum()))
        victims = slots[torch.argsort(age_key)[:excess]]
        self._hash.erase(victims.cpu().numpy())
        self._mark_dirty(victims.cpu().numpy())
        self.observations[victims] = 0
        self.weights[victims] = 0
        self.evicted_total += int(victims.numel())

    # ---------------------------------------------------------------- state
    def _mark_dirty(self, slots: np.ndarray) -> None:
        if self._dirty is not None and len(slots):
            self._dirty.update(np.unique(np.asarray(slots) // CHUNK_SLOTS).tolist())

    def take_dirty(self) -> set[int] | None:
        """Chunks changed since the last call (None: all), and starts tracking anew; a caller whose
        save then fails calls forget_saved() so the next save writes everything."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def forget_saved(self) -> None:
        self._dirty = None

    def active_chunks(self) -> list[int]:
        """Chunk numbers that hold at least one voxel, ascending."""
        return np.unique(self.active_slots().cpu().numpy() // CHUNK_SLOTS).tolist()

    def chunk_states(self, chunks: list[int]) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """(chunk, state_dict() of the voxels whose slots lie in it) for each of `chunks`; the states of
        all active chunks concatenated in chunk order are state_dict()."""
        slots = torch.sort(self.active_slots()).values
        bounds = torch.tensor([[c * CHUNK_SLOTS, (c + 1) * CHUNK_SLOTS] for c in chunks], dtype=slots.dtype,
                              device=slots.device).reshape(-1, 2)
        edges = torch.searchsorted(slots, bounds).tolist()
        for chunk, (lo, hi) in zip(chunks, edges):
            yield chunk, self._rows_state(slots[lo:hi])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Compact tensors of the active voxels (CPU), ordered by slot."""
        return self._rows_state(torch.sort(self.active_slots()).values)

    def _rows_state(self, slots: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "keys": self.keys_of(slots).contiguous(),
            "features": self.features[slots].cpu().contiguous(),
            "colors": self.colors[slots].cpu().contiguous(),
            "weights": self.weights[slots].cpu().contiguous(),
            "observations": self.observations[slots].cpu().contiguous(),
            "last_seen": self.last_seen[slots].cpu().contiguous(),
            "instance": self.instance[slots].cpu().contiguous(),
            "instance_votes": self._instance_votes[slots].cpu().contiguous(),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Replaces the map's content; shapes are checked before anything changes."""
        keys = state["keys"]
        m = keys.shape[0]
        expected = {"keys": (m, 3), "features": (m, self.feature_dim), "colors": (m, 3), "weights": (m,),
                    "observations": (m,), "last_seen": (m,), "instance": (m,), "instance_votes": (m,)}
        for name, shape in expected.items():
            if name not in state or tuple(state[name].shape) != shape:
                got = tuple(state[name].shape) if name in state else "missing"
                raise ValueError(f"map state '{name}': expected shape {shape}, got {got}")
        if m > self.config.max_voxels:
            raise ValueError(f"saved map has {m} voxels, more than max_voxels={self.config.max_voxels}")
        keys_np = keys.numpy().astype(np.int64)
        if m and np.abs(keys_np).max() >= OFFSET:
            raise ValueError(f"map state 'keys': voxel indices beyond +-{OFFSET}")
        packed = pack(keys_np)
        if np.unique(packed).shape[0] != m:
            raise ValueError("map state 'keys': a voxel appears twice")
        self.reset()
        if m == 0:
            return
        slots = torch.from_numpy(self._hash.insert(packed)).to(self.device)
        self._ensure_rows(self._hash.high_water)
        self.features[slots] = state["features"].to(self.device, self.features.dtype)
        self.colors[slots] = state["colors"].to(self.device, torch.float32)
        self.weights[slots] = state["weights"].to(self.device, torch.float32)
        self.observations[slots] = state["observations"].to(self.device, torch.int32)
        self.last_seen[slots] = state["last_seen"].to(self.device, torch.float64)
        self.instance[slots] = state["instance"].to(self.device, torch.int64)
        self._instance_votes[slots] = state["instance_votes"].to(self.device, torch.int32)
