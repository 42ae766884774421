"""launch/llm3d.yaml restates the node configs' defaults for users to read and edit: every value it
restates equals the dataclass default, unless listed here as a deliberate difference (why beside it)."""

import dataclasses

import pytest

from llm3d_core.bags.config import BagConfig
from llm3d_core.config import DEFAULT_CONFIG, config_from_dict, load_yaml, node_parameters
from llm3d_core.robot_body import RobotBodyConfig
from llm3d_ros.nodes.mapper_config import MapperNodeConfig
from llm3d_ros.nodes.reasoner_config import ReasonerNodeConfig
from llm3d_ros.nodes.sim_bridge_config import SimBridgeConfig

SECTIONS = {"llm3d_mapper": MapperNodeConfig, "llm3d_sim_bridge": SimBridgeConfig,
            "llm3d_reasoner": ReasonerNodeConfig}


def _differences(cls: type, yaml_values: dict, default, where: str) -> list[str]:
    out = []
    for key, value in yaml_values.items():
        path = f"{where}.{key}"
        if not hasattr(default, key):
            out.append(f"{path}: no such field of {cls.__name__}")
            continue
        field_default = getattr(default, key)
        if dataclasses.is_dataclass(field_default):
            out += _differences(type(field_default), value or {}, field_default, path)
        elif (list(field_default) if isinstance(field_default, tuple) else field_default) != value:
            out.append(f"{path}: yaml {value!r} != default {field_default!r}")
    return out


def _shipped(section: str) -> dict:
    return node_parameters(load_yaml(DEFAULT_CONFIG), section)


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_shipped_yaml_restates_the_defaults(section):
    cls = SECTIONS[section]
    assert len(_shipped(section)) > 5, f"{section} restates nothing: the check would pass vacuously"
    assert _differences(cls, _shipped(section), cls(), section) == []


def test_bag_section_restates_the_defaults():
    assert _differences(BagConfig, _shipped("llm3d_bag").get("bag", {}), BagConfig(), "llm3d_bag.bag") == []


def test_the_robot_body_is_the_same_wherever_it_is_stated():
    """llm3d_mapper's occupancy grid, the reasoner's goals and the simulated robot describe one body:
    a goal chosen for a thinner robot than the one that drives lies where it cannot stand."""
    body_fields = [f.name for f in dataclasses.fields(RobotBodyConfig)]
    mapper = config_from_dict(MapperNodeConfig, _shipped("llm3d_mapper")).occupancy
    reasoner = config_from_dict(ReasonerNodeConfig, _shipped("llm3d_reasoner")).reasoner.goals
    robot = config_from_dict(SimBridgeConfig, _shipped("llm3d_sim_bridge")).sim.agent.body()
    bodies = {name: {f: getattr(body, f) for f in body_fields}
              for name, body in (("mapper occupancy", mapper), ("reasoner goals", reasoner), ("sim agent", robot))}
    assert len({tuple(b.values()) for b in bodies.values()}) == 1, bodies
