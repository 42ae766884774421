"""Voxel index -> buffer slot hash map for the feature map, compiled with numba.

The fusion step looks up every lifted sample's voxel, inserts the new ones and gathers the frame's
distinct voxels. With Open3D's HashMap that took a torch.unique over the frame's keys, an activate
and a find for the keys already present, each crossing into Python; together about as long as the
whole TSDF integration. Here one compiled pass does it per sample: floor, pack, probe, insert,
de-duplicate.

Layout: open addressing with linear probing over a power-of-two table at most half full (the
capacity is the voxel budget, so it never grows or rehashes and slots never move); deletion shifts
the following entries back, so there are no tombstones and probes stay short after evictions.
Keys are voxel indices packed 21 bits per axis into one int64 (+-2^20 voxels per axis). Slots
index the map's tensors: a freed slot is reused before a fresh one is taken, so the tensors grow
only with the number of voxels alive.
"""

from __future__ import annotations

import numba
import numpy as np

EMPTY = -1  # an empty table entry / an inactive slot (packed keys are >= 0)
OFFSET = 1 << 20  # voxel indices are packed 21 bits per axis: +-2^20 voxels (+-21 km at 2 cm)
_MASK21 = (1 << 21) - 1
# _assign's status codes
OK, OUT_OF_RANGE, NOT_FINITE, FULL = 0, 1, 2, 3


@numba.njit(cache=True, nogil=True, inline="always")
def _mix(key: int) -> int:
    """splitmix64's finaliser: neighbouring voxels land far apart in the table."""
    z = np.uint64(key)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.int64(z ^ (z >> np.uint64(31)))


@numba.njit(cache=True, nogil=True, inline="always")
def _probe(table_keys: np.ndarray, key: int) -> int:
    """Table position of `key`, or of the empty entry where it would go."""
    mask = table_keys.shape[0] - 1
    i = _mix(key) & mask
    while table_keys[i] != EMPTY and table_keys[i] != key:
        i = (i + 1) & mask
    return i


@numba.njit(cache=True, nogil=True)
def _find(table_keys: np.ndarray, table_slots: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Slots (N,) int64 of packed keys (N,), EMPTY where absent."""
    out = np.empty(keys.shape[0], np.int64)
    for n in range(keys.shape[0]):
        i = _probe(table_keys, keys[n])
        out[n] = table_slots[i] if table_keys[i] == keys[n] else EMPTY
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _insert(table_keys, table_slots, slot_keys, free, meta, key: int) -> int:
    """Slot of `key`, inserting it if absent; EMPTY when no slot is left. meta: [size, fresh, n_free]."""
    i = _probe(table_keys, key)
    if table_keys[i] == key:
        return table_slots[i]
    if meta[2] > 0:  # reuse a freed slot first
        meta[2] -= 1
        slot = free[meta[2]]
    elif meta[1] < slot_keys.shape[0]:
        slot = meta[1]
        meta[1] += 1
    else:
        return EMPTY
    table_keys[i] = key
    table_slots[i] = slot
    slot_keys[slot] = key
    meta[0] += 1
    return slot


@numba.njit(cache=True, nogil=True)
def _insert_keys(table_keys, table_slots, slot_keys, free, meta, keys: np.ndarray) -> np.ndarray:
    """Slots (N,) of packed keys (N,), inserting the absent ones (EMPTY where the budget is spent)."""
    out = np.empty(keys.shape[0], np.int64)
    for n in range(keys.shape[0]):
        out[n] = _insert(table_keys, table_slots, slot_keys, free, meta, keys[n])
    return out


@numba.njit(cache=True, nogil=True)
def _erase(table_keys, table_slots, slot_keys, free, meta, slots: np.ndarray) -> None:
    """Removes the voxels of active `slots` (backward-shift deletion) and frees the slots."""
    mask = table_keys.shape[0] - 1
    for s in slots:
        key = slot_keys[s]
        if key == EMPTY:
            continue
        i = _probe(table_keys, key)
        table_keys[i] = EMPTY
        j = i
        while True:  # pull back later entries of the run whose home lies at or before the hole
            j = (j + 1) & mask
            if table_keys[j] == EMPTY:
                break
            home = _mix(table_keys[j]) & mask
            stays = (i < home <= j) if i <= j else (home > i or home <= j)
            if not stays:
                table_keys[i] = table_keys[j]
                table_slots[i] = table_slots[j]
                table_keys[j] = EMPTY
                i = j
        slot_keys[s] = EMPTY
        free[meta[2]] = s
        meta[2] += 1
        meta[0] -= 1


@numba.njit(cache=True, nogil=True)
def _assign(table_keys, table_slots, slot_keys, free, meta, mark, points: np.ndarray, voxel_size: float):
    """The fusion step's voxel pass: each sample's voxel, inserted if new, and the frame's distinct voxels.

    points (N, 3) float64 world metres. Returns (status, slots (U,) int64 of the distinct voxels in
    order of first appearance, inverse (N,) int64 sample -> position in slots). mark (S,) int64 is
    scratch: mark[slot] = position + 1 while this frame runs, reset before returning.
    """
    n_points = points.shape[0]
    keys = np.empty(n_points, np.int64)
    for n in range(n_points):  # all keys first: a refused frame inserts nothing
        key = np.int64(0)
        for a in range(3):
            c = np.floor(points[n, a] / voxel_size)
            if not np.isfinite(c):
                return NOT_FINITE, keys[:0], keys[:0]
            if abs(c) >= OFFSET:
                return OUT_OF_RANGE, keys[:0], keys[:0]
            key = (key << 21) | (np.int64(c) + OFFSET)
        keys[n] = key
    # Look up all first, insert only the misses: a loop of pure look-ups runs ~10x faster than one
    # that may also insert (measured; with stores in the loop body the probes no longer overlap).
    found = _find(table_keys, table_slots, keys)
    added = np.empty(n_points, np.int64)  # slots inserted by this call, to undo a refused frame
    n_added = 0
    for n in range(n_points):
        if found[n] == EMPTY:
            size = meta[0]
            found[n] = _insert(table_keys, table_slots, slot_keys, free, meta, keys[n])
            if found[n] == EMPTY:
                _erase(table_keys, table_slots, slot_keys, free, meta, added[:n_added])
                return FULL, keys[:0], keys[:0]
            if meta[0] > size:  # a repeat of a key inserted earlier in this frame is found instead
                added[n_added] = found[n]
                n_added += 1
    inverse = np.empty(n_points, np.int64)
    slots = np.empty(n_points, np.int64)
    u = 0
    for n in range(n_points):
        slot = found[n]
        if mark[slot] == 0:
            slots[u] = slot
            u += 1
            mark[slot] = u
        inverse[n] = mark[slot] - 1
    for i in range(u):
        mark[slots[i]] = 0
    return OK, slots[:u], inverse


def pack(coords: np.ndarray) -> np.ndarray:
    """Packed int64 keys (N,) of integer voxel indices (N, 3) within +-2^20."""
    c = coords.astype(np.int64) + OFFSET
    return (c[:, 0] << 42) | (c[:, 1] << 21) | c[:, 2]


def unpack(keys: np.ndarray) -> np.ndarray:
    """Integer voxel indices (N, 3) int32 of packed keys (N,)."""
    keys = keys.astype(np.int64)
    return (np.stack([keys >> 42, (keys >> 21) & _MASK21, keys & _MASK21], axis=1) - OFFSET).astype(np.int32)


def voxel_coords(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Integer voxel indices (N, 3) int64 of world points (N, 3); refuses points off the key range."""
    coords = np.floor(np.asarray(points, np.float64) / voxel_size)
    if coords.size and not np.isfinite(coords).all():
        raise ValueError("points must be finite")
    if coords.size and np.abs(coords).max() >= OFFSET:
        raise ValueError(f"points lie more than {OFFSET * voxel_size:.0f} m from the map origin")
    return coords.astype(np.int64)


class VoxelHash:
    """Packed voxel keys -> slots in [0, capacity); at most `capacity` voxels."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        size = 1 << max(4, int(2 * capacity - 1).bit_length())  # power of two >= 2x capacity: load <= 0.5
        self._table_keys = np.full(size, EMPTY, np.int64)
        self._table_slots = np.zeros(size, np.int64)
        self._slot_keys = np.full(capacity, EMPTY, np.int64)  # the key held by each slot
        self._free = np.zeros(capacity, np.int64)  # stack of freed slots
        self._meta = np.zeros(3, np.int64)  # size, fresh (slots ever handed out), free count
        self._mark = np.zeros(capacity, np.int64)  # _assign's scratch

    def __len__(self) -> int:
        return int(self._meta[0])

    @property
    def high_water(self) -> int:
        """1 + the largest slot ever handed out (the slot tensors need this many rows)."""
        return int(self._meta[1])

    def _state(self) -> tuple[np.ndarray, ...]:
        return self._table_keys, self._table_slots, self._slot_keys, self._free, self._meta

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Slots (N,) int64 of packed keys, EMPTY (-1) where absent."""
        return _find(self._table_keys, self._table_slots, np.ascontiguousarray(keys, np.int64))

    def insert(self, keys: np.ndarray) -> np.ndarray:
        """Slots (N,) of packed keys, inserting absent ones; raises if the capacity would be exceeded."""
        slots = _insert_keys(*self._state(), np.ascontiguousarray(keys, np.int64))
        if slots.size and slots.min() == EMPTY:
            raise ValueError(f"voxel hash map full ({self.capacity} voxels)")
        return slots

    def assign(self, points: np.ndarray, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
        """The distinct voxels (U,) of world points (N, 3), inserted if new, and the inverse (N,).

        Refuses non-finite or out-of-range points, and a frame that would exceed the capacity (the
        caller makes room first, see VoxelFeatureMap), leaving the map as it was.
        """
        status, slots, inverse = _assign(*self._state(), self._mark, np.ascontiguousarray(points, np.float64),
                                         float(voxel_size))
        if status == NOT_FINITE:
            raise ValueError("points must be finite")
        if status == OUT_OF_RANGE:
            raise ValueError(f"points lie more than {OFFSET * voxel_size:.0f} m from the map origin")
        if status == FULL:
            raise ValueError(f"voxel hash map full ({self.capacity} voxels)")
        return slots, inverse

    def erase(self, slots: np.ndarray) -> None:
        """Removes the voxels held by `slots` (inactive ones are skipped) and frees the slots."""
        _erase(*self._state(), np.ascontiguousarray(slots, np.int64))

    def active_slots(self) -> np.ndarray:
        """Slots (M,) int64 holding a voxel, ascending."""
        return np.flatnonzero(self._slot_keys[: self.high_water] != EMPTY)

    def keys_of(self, slots: np.ndarray) -> np.ndarray:
        """Packed keys (M,) of slots."""
        return self._slot_keys[slots]
