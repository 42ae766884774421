"""Exact synthetic cases for the sparse voxel feature map."""

import numpy as np
import pytest
import torch

from llm3d_core.mapping.voxel_features import VoxelFeatureMap, VoxelMapConfig


def make_map(**kw) -> VoxelFeatureMap:
    return VoxelFeatureMap(VoxelMapConfig(**kw), feature_dim=4, device="cpu")


def test_features_average_over_frames():
    vmap = make_map(voxel_size=0.1, weight_cap=100)
    p = torch.tensor([[0.05, 0.05, 0.05]], dtype=torch.float64)
    col = torch.zeros(1, 3)
    for t, value in enumerate([1.0, 2.0, 6.0]):
        vmap.integrate(p, torch.full((1, 4), value), col, float(t))
    assert len(vmap) == 1
    slot = vmap.active_slots()
    assert torch.allclose(vmap.features[slot], torch.full((1, 4), 3.0))
    assert vmap.observations[slot].item() == 3 and vmap.weights[slot].item() == 3
    assert vmap.last_seen[slot].item() == 2.0


def test_revisited_voxels_update_their_own_slots():
    """Many voxels seen again: each keeps its own running mean, count and time (a voxel the hash map
    already holds must be found, not re-inserted)."""
    vmap = make_map(voxel_size=1.0, weight_cap=100)
    pts = torch.tensor([[i + 0.5, 0.5, 0.5] for i in range(8)], dtype=torch.float64)  # 8 voxels
    base = torch.arange(8, dtype=torch.float32)[:, None].expand(8, 4)
    vmap.integrate(pts, base, torch.zeros(8, 3), 0.0)
    vmap.integrate(pts.flip(0), (base + 2).flip(0), torch.ones(8, 3), 1.0)  # other order: other slots
    assert len(vmap) == 8
    slots, found = vmap.lookup(pts)
    assert found.all()
    torch.testing.assert_close(vmap.features[slots], base + 1)  # mean of v and v + 2
    torch.testing.assert_close(vmap.colors[slots], torch.full((8, 3), 0.5))
    assert vmap.observations[slots].tolist() == [2] * 8 and vmap.last_seen[slots].tolist() == [1.0] * 8


def test_numba_update_matches_torch_ops():
    """The one-pass CPU kernel (mapping.fused_update) and the torch ops give the same map: feature and
    colour means, capped weights, counts, times and instance votes, over frames that revisit voxels
    in a new order."""
    from llm3d_core.mapping.taps import bilinear_taps

    rng = np.random.default_rng(1)
    g = torch.Generator().manual_seed(1)
    maps = [VoxelFeatureMap(VoxelMapConfig(voxel_size=0.2, weight_cap=3, cpu_kernel=kernel), feature_dim=5,
                            device="cpu") for kernel in (False, True)]
    for t in range(6):
        fmap = torch.randn(5, 4, 6, generator=g)
        v, u = rng.integers(0, 32, 200), rng.integers(0, 48, 200)
        points = torch.from_numpy(rng.uniform(0, 1.0 + 0.2 * t, (200, 3)))  # revisits old voxels, adds new
        colors = torch.from_numpy(rng.uniform(0, 1, (200, 3)).astype(np.float32))
        instance = torch.from_numpy(rng.integers(0, 3, 200))
        taps = bilinear_taps(fmap, v, u, 32, 48)
        assert maps[0]._use_kernel(taps) is False and maps[1]._use_kernel(taps) is True
        touched = [m.integrate(points, taps, colors, float(t), instance if t % 2 else None) for m in maps]
        assert touched[0] == touched[1]
    centers = maps[0].centers()
    slots = [m.lookup(centers)[0] for m in maps]  # the same voxels in each map (slots may differ)
    assert int(maps[0].observations[slots[0]].max()) > 3  # revisited past the weight cap
    for name in ("features", "colors", "weights", "observations", "last_seen", "instance", "_instance_votes"):
        torch.testing.assert_close(getattr(maps[1], name)[slots[1]], getattr(maps[0], name)[slots[0]],
                                   atol=1e-5, rtol=1e-5)


def test_samples_in_one_voxel_average_within_a_frame_and_weight_is_capped():
    vmap = make_map(voxel_size=1.0, weight_cap=2)
    pts = torch.tensor([[0.1, 0.1, 0.1], [0.9, 0.9, 0.9], [1.5, 0.5, 0.5]], dtype=torch.float64)
    feats = torch.tensor([[0.0] * 4, [2.0] * 4, [5.0] * 4])
    assert vmap.integrate(pts, feats, torch.zeros(3, 3), 0.0) == 2
    keys = vmap.keys_of(vmap.active_slots())
    first = vmap.active_slots()[(keys == torch.tensor([0, 0, 0], dtype=torch.int32)).all(1)]
    assert torch.allclose(vmap.features[first], torch.full((1, 4), 1.0))
    assert vmap.weights[first].item() == 2  # two samples, cap 2
    # With the weight capped at 2, a new sample of 4 moves the mean by 1/3 of the gap.
    vmap.integrate(pts[:1], torch.full((1, 4), 4.0), torch.zeros(1, 3), 1.0)
    assert torch.allclose(vmap.features[first], torch.full((1, 4), 2.0))
    assert vmap.weights[first].item() == 2


def test_bilinear_taps_fuse_like_sampled_features():
    """The mapper's fast path (taps into the feature map, one sparse product per frame) fuses the same
    per-voxel means as sampling every pixel's feature with grid_sample and averaging them."""
    from llm3d_core.mapping.taps import bilinear_taps, sample_features

    g = torch.Generator().manual_seed(0)
    fmap = torch.randn(6, 7, 9, generator=g)  # (C, h, w): a coarse map over a 48 x 64 image
    rng = np.random.default_rng(0)
    v, u = rng.integers(0, 48, 300), rng.integers(0, 64, 300)
    v[:4], u[:4] = [0, 0, 47, 47], [0, 63, 0, 63]  # corners: taps outside the map weigh 0
    taps = bilinear_taps(fmap, v, u, 48, 64)
    dense = sample_features(fmap, v, u, 48, 64)  # (N, C)
    torch.testing.assert_close(taps.dense(), dense, atol=1e-5, rtol=1e-5)
    assert taps.shape == dense.shape
    points = torch.from_numpy(rng.uniform(0, 1, (300, 3)))
    maps = [VoxelFeatureMap(VoxelMapConfig(voxel_size=0.25), feature_dim=6, device="cpu") for _ in range(2)]
    for t in range(2):  # two frames: the running mean too
        maps[0].integrate(points, dense, torch.zeros(300, 3), float(t))
        maps[1].integrate(points, taps, torch.zeros(300, 3), float(t))
    slots = maps[0].active_slots()
    assert torch.equal(maps[0].keys_of(slots), maps[1].keys_of(slots))
    torch.testing.assert_close(maps[1].features[slots], maps[0].features[slots], atol=1e-5, rtol=1e-5)


def test_budget_holds_and_eviction_keeps_newest():
    vmap = make_map(voxel_size=1.0, max_voxels=50, evict_slack=0.0)
    for t in range(10):  # each frame: 10 new voxels along x
        pts = torch.tensor([[10 * t + i + 0.5, 0.5, 0.5] for i in range(10)], dtype=torch.float64)
        vmap.integrate(pts, torch.full((10, 4), float(t)), torch.zeros(10, 3), float(t))
        assert len(vmap) <= 50
    assert len(vmap) == 50
    assert vmap.evicted_total == 50
    slots = vmap.active_slots()
    # Only the five newest frames survive.
    assert sorted(set(vmap.last_seen[slots].tolist())) == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert torch.all(vmap.features[slots, 0] == vmap.last_seen[slots].float())
    # A recycled slot starts fresh: its mean is not polluted by the evicted voxel.
    assert vmap.observations[slots].max().item() == 1


def test_frame_larger_than_budget_is_refused_without_change():
    vmap = make_map(voxel_size=1.0, max_voxels=5)
    pts = torch.tensor([[i + 0.5, 0.5, 0.5] for i in range(3)], dtype=torch.float64)
    vmap.integrate(pts, torch.ones(3, 4), torch.zeros(3, 3), 0.0)
    big = torch.tensor([[i + 100.5, 0.5, 0.5] for i in range(6)], dtype=torch.float64)
    with pytest.raises(ValueError, match="more than max_voxels"):
        vmap.integrate(big, torch.ones(6, 4), torch.zeros(6, 3), 1.0)
    assert len(vmap) == 3


def test_instance_majority_vote():
    vmap = make_map(voxel_size=1.0)
    p = torch.tensor([[0.5, 0.5, 0.5]], dtype=torch.float64)
    for t, inst in enumerate([3, 3, 7, 3, 7, 7, 7]):
        vmap.integrate(p, torch.ones(1, 4), torch.zeros(1, 3), float(t), instance=torch.tensor([inst]))
    assert vmap.instance[vmap.active_slots()].item() == 7


def test_state_round_trip_and_shape_check():
    vmap = make_map(voxel_size=0.5)
    rng = np.random.default_rng(0)
    pts = torch.from_numpy(rng.uniform(-3, 3, (200, 3)))
    vmap.integrate(pts, torch.from_numpy(rng.normal(size=(200, 4))).float(), torch.rand(200, 3), 1.0)
    state = vmap.state_dict()
    other = make_map(voxel_size=0.5)
    other.load_state_dict(state)
    again = other.state_dict()
    order_a, order_b = np.lexsort(state["keys"].numpy().T), np.lexsort(again["keys"].numpy().T)
    for name in state:
        assert torch.equal(state[name][order_a], again[name][order_b]), name
    bad = dict(state, features=state["features"][:, :2])
    with pytest.raises(ValueError, match="'features'"):
        other.load_state_dict(bad)
    assert len(other) == len(vmap)


def test_fp16_storage():
    vmap = make_map(voxel_size=0.5, fp16=True)
    vmap.integrate(torch.zeros(1, 3, dtype=torch.float64), torch.full((1, 4), 0.25), torch.zeros(1, 3), 0.0)
    assert vmap.features.dtype == torch.float16
    assert vmap.features[vmap.active_slots()].float().tolist() == [[0.25] * 4]


def test_config_validation():
    for kw, field in [({"voxel_size": 0}, "voxel_size"), ({"max_voxels": 0}, "max_voxels"),
                      ({"weight_cap": 0.5}, "weight_cap"), ({"evict_slack": 1.0}, "evict_slack")]:
        with pytest.raises(ValueError, match=field):
            VoxelMapConfig(**kw)


def test_lookup_with_and_without_neighbours():
    vmap = make_map(voxel_size=1.0)
    vmap.integrate(torch.tensor([[0.5, 0.5, 0.5]], dtype=torch.float64), torch.ones(1, 4), torch.zeros(1, 3), 0.0)
    pts = torch.tensor([[0.2, 0.7, 0.1], [1.5, 0.5, 0.5], [2.5, 0.5, 0.5]], dtype=torch.float64)
    slots, found = vmap.lookup(pts)
    assert found.tolist() == [True, False, False]
    slots_n, found_n = vmap.lookup(pts, neighbors=True)
    assert found_n.tolist() == [True, True, False]  # the face neighbour is found, two voxels away is not
    assert slots_n[1] == slots[0]
    assert vmap.lookup(torch.zeros(0, 3))[1].numel() == 0


def test_box_overlap_and_iou():
    from llm3d_core.geometry import box_iou_3d
    from llm3d_core.mapping.objects import box_overlap

    def box_iou(a_min, a_max, b_min, b_max):
        return box_iou_3d(np.concatenate([a_min, a_max]), np.concatenate([b_min, b_max]))

    a_min, a_max = np.zeros(3), np.ones(3)
    inner_min, inner_max = np.full(3, 0.25), np.full(3, 0.75)
    assert box_overlap(a_min, a_max, inner_min, inner_max) == 1.0
    assert box_iou(a_min, a_max, inner_min, inner_max) == pytest.approx(0.125)
    assert box_overlap(a_min, a_max, a_min + 2, a_max + 2) == 0.0
    assert box_iou(a_min, a_max, a_min + [0.5, 0, 0], a_max + [0.5, 0, 0]) == pytest.approx(1 / 3)


def test_voxel_hash_against_a_dict_through_inserts_and_erasures():
    """The compiled hash map agrees with a Python dict through many inserts and erasures (deletion
    shifts entries back: every key must stay findable), reuses freed slots and refuses to overfill."""
    from llm3d_core.mapping.voxel_hash import EMPTY, VoxelHash, pack, unpack

    rng = np.random.default_rng(0)
    table = VoxelHash(600)
    ref: dict[int, int] = {}
    for step in range(40):
        coords = rng.integers(-40, 40, (120, 3))  # a small range: collisions, repeats and long probe runs
        keys = pack(coords)
        room = 600 - len(ref)
        keys = keys[np.isin(keys, list(ref)) | (np.cumsum(~np.isin(keys, list(ref))) <= room)]
        slots = table.insert(keys)
        for k, s in zip(keys.tolist(), slots.tolist()):
            assert ref.setdefault(k, s) == s  # a present key keeps its slot
        assert len(set(ref.values())) == len(ref) == len(table)
        if step % 3 == 2:  # erase a random third
            victims = rng.choice(list(ref), size=len(ref) // 3, replace=False)
            table.erase(np.array([ref.pop(int(k)) for k in victims]))
        probe = np.concatenate([np.array(list(ref), np.int64), pack(rng.integers(-60, 60, (50, 3)))])
        expected = np.array([ref.get(int(k), EMPTY) for k in probe])
        assert np.array_equal(table.find(probe), expected)
        assert sorted(ref.values()) == table.active_slots().tolist()
    assert table.high_water <= 600  # freed slots were reused, never more than the capacity
    assert np.array_equal(unpack(pack(np.array([[-5, 0, 7], [2**20 - 1, -(2**20) + 1, 3]]))),
                          [[-5, 0, 7], [2**20 - 1, -(2**20) + 1, 3]])
    full = VoxelHash(4)
    full.insert(pack(np.array([[i, 0, 0] for i in range(4)])))
    with pytest.raises(ValueError, match="full"):
        full.insert(pack(np.array([[9, 9, 9]])))


def test_assign_groups_a_frame_by_voxel_and_refuses_bad_points_unchanged():
    from llm3d_core.mapping.voxel_hash import VoxelHash

    rng = np.random.default_rng(1)
    points = rng.uniform(-2, 2, (500, 3))
    table = VoxelHash(1000)
    slots, inverse = table.assign(points, 0.5)
    coords = np.floor(points / 0.5)
    _, ref_inverse = np.unique(coords, axis=0, return_inverse=True)
    assert len(slots) == len(np.unique(ref_inverse)) == len(table)
    # Same voxel <=> same group, and groups are numbered in order of first appearance.
    assert np.array_equal(ref_inverse.ravel()[:, None] == ref_inverse.ravel()[None], inverse[:, None] == inverse[None])
    assert np.array_equal(np.unique(inverse, return_index=True)[1], np.sort(np.unique(inverse, return_index=True)[1]))
    before = table.active_slots().copy()
    for bad, match in ((np.array([[0.0, np.nan, 0.0]]), "finite"), (np.array([[1e9, 0.0, 0.0]]), "map origin")):
        with pytest.raises(ValueError, match=match):
            table.assign(np.concatenate([rng.uniform(5, 9, (20, 3)), bad]), 0.5)  # new voxels, then the bad one
        assert np.array_equal(table.active_slots(), before)
    small = VoxelHash(10)
    with pytest.raises(ValueError, match="full"):
        small.assign(rng.uniform(0, 10, (50, 3)), 0.5)
    assert len(small) == 0  # a refused frame inserts nothing


def test_points_too_far_are_refused():
    vmap = make_map(voxel_size=0.01)
    with pytest.raises(ValueError, match="from the map origin"):
        vmap.integrate(torch.tensor([[2e4, 0.0, 0.0]], dtype=torch.float64), torch.ones(1, 4), torch.zeros(1, 3), 0.0)
    assert len(vmap) == 0
