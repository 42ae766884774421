"""`llm3d bag play` into a live `llm3d_mapper` (started by `llm3d bringup`, real DDS): the bag's
frames, CameraInfo and TF arrive with their timing and the node builds the map from them."""

import threading

import numpy as np
import pytest

from tests.ros.test_mapper_node import SMALL_MAPPER, Bringup, Harness, _alive

pytestmark = pytest.mark.ros


def test_play_into_live_mapper_builds_the_map(seven_scenes, tmp_path):
    from llm3d_core.bags.convert import frames_to_bag
    from llm3d_core.bags.reader import BagFrameReader
    from llm3d_core.data.frames import SevenScenesFrames
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_ros.bag_player import play_bag

    bag = tmp_path / "bag"
    frames_to_bag(seven_scenes, bag, every=2, limit=8)  # 8 real frames, ~0.9 s of bag time
    map_path = tmp_path / "map"
    params = tmp_path / "params.yaml"
    params.write_text(SMALL_MAPPER.format(map_path=map_path))
    bringup = Bringup("--params-file", str(params), "--device", "cpu")
    harness = Harness()
    try:
        harness.spin_until(lambda: harness.status and harness.feed.color.get_subscription_count() > 0, 120.0,
                           "the mapper's subscriptions and first status", bringup)
        result = {}
        # rate 0.2: ~5 s for the 8 frames, slow enough that the CPU mapper fuses each before the next
        player = threading.Thread(target=lambda: result.update(stats=play_bag(bag, rate=0.2)), daemon=True)
        player.start()
        harness.spin_until(lambda: not player.is_alive(), 120.0, "the player to finish", bringup)
        stats = result["stats"]
        assert stats.messages["/camera/color/image_raw"] == 8 and stats.messages["/tf"] == 8
        source = SevenScenesFrames(seven_scenes)
        span = source[14].timestamp - source[0].timestamp  # frames 0, 2, ..., 14 of the folder
        assert stats.bag_seconds == pytest.approx(span, abs=0.01)
        assert stats.seconds == pytest.approx(span / 0.2, abs=1.0)  # original timing, slowed 5x
        harness.spin_until(lambda: harness.status["queue"] == 0 and harness.status["fused"] >= 6, 60.0,
                           "the played frames to be fused", bringup)
        status = harness.status
        assert status["errors"]["no_transform"] == 0 and status["errors"]["no_camera_info"] <= 1
        saved = harness.call(harness.save, bringup)
        assert saved.success, saved.message
        live = FeatureFusionMapper.load(map_path)
        assert live.frames >= status["fused"] and len(live.voxels) > 0
        # The same frames read offline give the same camera poses the node fused with: its map's
        # voxels are (nearly all) among those of an offline map of the bag.
        offline = FeatureFusionMapper(live.config)
        for frame in BagFrameReader(bag).frames():
            offline.integrate(frame)
        keys = {tuple(k) for k in offline.voxels.keys_of(offline.voxels.active_slots()).tolist()}
        live_keys = {tuple(k) for k in live.voxels.keys_of(live.voxels.active_slots()).tolist()}
        assert len(live_keys & keys) / len(live_keys) > 0.98
        if live.frames == offline.frames:  # no frame dropped: the same map
            assert live_keys == keys
    finally:
        harness.close()
        rc = bringup.stop()
    assert rc == 0, bringup.output
    assert not any(_alive(pid) for pid in bringup.node_pids())
