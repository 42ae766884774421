"""Stamp pairing, the newest-wins queue, and dataclass configs as ROS parameters."""

import threading

import pytest

from llm3d_core.config import ConfigError
from llm3d_ros.nodes.mapper_config import MapperNodeConfig
from llm3d_ros.parameters import declare_config_parameters, flatten_config, read_config_parameters
from llm3d_ros.sync import LatestQueue, StampPairer

pytestmark = pytest.mark.ros

MS = 1_000_000


def test_pairs_exact_and_within_tolerance_in_either_order():
    pairer = StampPairer(tolerance_ns=5 * MS)
    assert pairer.add_first(100 * MS, "c100") is None
    assert pairer.add_second(103 * MS, "d103") == (100 * MS, "c100", "d103")
    assert pairer.add_second(200 * MS, "d200") is None
    assert pairer.add_first(200 * MS, "c200") == (200 * MS, "c200", "d200")
    assert pairer.add_first(300 * MS, "c300") is None
    assert pairer.add_second(310 * MS, "d310") is None  # 10 ms apart: no pair
    assert pairer.unpaired == 0


def test_older_unmatched_frames_are_dropped_and_counted():
    pairer = StampPairer(tolerance_ns=0, buffer=3)
    for t in (1, 2, 3):
        pairer.add_first(t * MS, f"c{t}")
    assert pairer.add_second(3 * MS, "d3") == (3 * MS, "c3", "d3")
    assert pairer.unpaired == 2  # c1, c2 can no longer pair with anything newer
    for t in (10, 11, 12, 13):  # buffer of 3: c10 is pushed out
        pairer.add_first(t * MS, f"c{t}")
    assert pairer.unpaired == 3
    assert pairer.add_second(10 * MS, "d10") is None


def test_latest_queue_keeps_the_newest_and_counts_drops():
    queue = LatestQueue(maxsize=1)
    for i in range(30):
        queue.put(i)
    assert queue.dropped == 29 and len(queue) == 1
    assert queue.get(0.0) == 29
    assert queue.get(0.01) is None
    waiter = threading.Thread(target=lambda: queue.put("late"))
    waiter.start()
    assert queue.get(5.0) == "late"
    waiter.join()
    queue.close()
    assert queue.get(5.0) is None  # returns at once when closed
    with pytest.raises(ValueError):
        LatestQueue(0)


def test_flatten_config_uses_dotted_names():
    flat = flatten_config(MapperNodeConfig())
    assert flat["map_frame"] == "map"
    assert flat["mapper.encoder.feature_dim"] == 128
    assert flat["mapper.voxels.voxel_size"] == 0.05
    assert isinstance(flat["mapper.objects.vocabulary"], list)


def test_node_config_validation_names_the_field():
    with pytest.raises(ValueError, match="queue_size"):
        MapperNodeConfig(queue_size=0)
    with pytest.raises(ValueError, match="marker_style"):
        MapperNodeConfig(marker_style="spheres")
    with pytest.raises(ValueError, match="device"):
        MapperNodeConfig(device="tpu")
    assert MapperNodeConfig(device="cpu").core_config().device == "cpu"


def test_parameters_declared_overridden_and_read_back():
    import rclpy
    from rclpy.parameter import Parameter

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        overrides = [Parameter("queue_size", value=3), Parameter("mapper.depth_max", value=4),  # int for a float
                     Parameter("mapper.encoder.feature_dim", value=16)]
        node = rclpy.create_node("params_test", context=context, parameter_overrides=overrides,
                                 automatically_declare_parameters_from_overrides=True)
        declare_config_parameters(node, MapperNodeConfig())
        assert node.get_parameter("mapper.tsdf.voxel_size").value == 0.02  # declared from the default
        cfg = read_config_parameters(node, MapperNodeConfig)
        assert cfg.queue_size == 3 and cfg.mapper.encoder.feature_dim == 16
        assert cfg.mapper.depth_max == 4.0 and isinstance(cfg.mapper.depth_max, float)
        node.destroy_node()

        typo = rclpy.create_node("params_typo", context=context, parameter_overrides=[Parameter("mapper.depht_max", value=4.0)],
                                 automatically_declare_parameters_from_overrides=True)
        declare_config_parameters(typo, MapperNodeConfig())
        with pytest.raises(ConfigError, match="params_typo.mapper.depht_max"):
            read_config_parameters(typo, MapperNodeConfig)
        typo.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
