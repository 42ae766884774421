"""Dataclass configs <-> flat ROS 2 parameters.

ROS parameters are flat, dotted names (`mapper.encoder.feature_dim`), while llm3d's configs are
nested dataclasses validated in `__post_init__`. Nodes declare every field of their config as a
parameter (so `ros2 param list/get` shows them), let a `--params-file` override them, and read
them back through `config_from_dict`, which coerces YAML's `5` into a float field and rejects
unknown keys: a typo in the parameter file stops the node with a message naming the key instead
of being ignored.
"""

from __future__ import annotations

import array
import dataclasses
from typing import Any, TypeVar

from llm3d_core.config import config_from_dict

C = TypeVar("C")

# Parameters every rclpy node may have that belong to ROS, not to our configs.
ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")
ROS_OWN_PREFIXES = ("qos_overrides.",)


def flatten_config(config: Any, prefix: str = "") -> dict[str, Any]:
    """Dataclass instance -> {dotted name: value}; nested dataclasses become dotted prefixes."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {config!r}")
    flat: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            flat.update(flatten_config(value, name + "."))
        elif isinstance(value, tuple):
            flat[name] = list(value)
        else:
            flat[name] = value
    return flat


def declare_config_parameters(node, defaults: Any) -> None:
    """Declares every field of `defaults` (a dataclass instance) as a parameter of `node`.

    Parameters given by a params file or `-p` are already declared when the node was created
    with automatically_declare_parameters_from_overrides=True; those keep their given values.
    Types are checked later by config_from_dict, so parameters are declared dynamically typed.
    """
    from rcl_interfaces.msg import ParameterDescriptor

    for name, value in flatten_config(defaults).items():
        if not node.has_parameter(name):
            node.declare_parameter(name, value, ParameterDescriptor(dynamic_typing=True))


def _plain(value: Any) -> Any:
    if isinstance(value, (array.array, tuple)):
        return list(value)
    return value


def parameters_as_dict(node) -> dict[str, Any]:
    """All of `node`'s own parameters as {dotted name: plain Python value}."""
    return {name: _plain(param.value) for name, param in node.get_parameters_by_prefix("").items()
            if name not in ROS_OWN_PARAMETERS and not name.startswith(ROS_OWN_PREFIXES)}


def read_config_parameters(node, cls: type[C]) -> C:
    """Builds config dataclass `cls` from the node's parameters; bad values raise ConfigError."""
    return config_from_dict(cls, parameters_as_dict(node), node.get_name())
