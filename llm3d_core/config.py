"""One YAML file configures every component, for the ROS nodes and the CLI alike.

The file is keyed the ROS 2 way: `<node_name>: ros__parameters: {...}`, so `ros2 launch` can
pass it to nodes unchanged. Each component has a dataclass config validated in its
`__post_init__`; `config_from_dict` builds one from a (possibly nested) mapping and rejects
unknown keys with the path of the offending key, so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "launch" / "llm3d.yaml"


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the field and value."""


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a YAML mapping; a missing file or non-mapping content raises ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not a YAML text file ({err.reason} at byte {err.start})") from err
    except yaml.YAMLError as err:
        # One line: the parser's own message spans several, with a caret under the position.
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def node_parameters(data: Mapping[str, Any], node_name: str) -> dict[str, Any]:
    """The `ros__parameters` of one node section (empty when the section is absent)."""
    section = data.get(node_name) or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"section '{node_name}' must be a mapping")
    params = section.get("ros__parameters", {}) or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"'{node_name}.ros__parameters' must be a mapping")
    return dict(params)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {hint.__name__}, got {value!r}")
        return config_from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where) if len(args) == 1 else value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # YAML writes 1 for 1.0
    if hint in (int, float, str, bool) and not isinstance(value, hint) or (
        hint in (int, float) and isinstance(value, bool)
    ):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def config_from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Builds dataclass `cls` from `data`; nested dataclass fields take nested mappings.

    Dotted keys (`a.b: 1`, as ROS flattens nested parameters) are accepted too.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    nested: dict[str, Any] = {}
    for key, value in data.items():
        head, _, rest = str(key).partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            nested[head] = value
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(nested) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + u for u in unknown)} for {cls.__name__}; "
            f"known: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in nested.items():
        path = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(value, hints[name], path)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where or cls.__name__}: {err}") from err


def config_to_dict(config: Any) -> dict[str, Any]:
    """The plain-dict form of a dataclass config (for JSON next to checkpoints and maps)."""
    return dataclasses.asdict(config)


def load_config(cls: type[T], node_name: str, path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> T:
    """Reads `node_name`'s section of the YAML file at `path` (default: launch/llm3d.yaml)."""
    params = node_parameters(load_yaml(path or DEFAULT_CONFIG), node_name)
    params.update(overrides or {})
    return config_from_dict(cls, params, node_name)


def require_positive(name: str, value: float) -> None:
    """ValueError naming `name` unless `value` is a finite number > 0 (for config __post_init__ checks)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def require_non_empty(name: str, value: str) -> None:
    """ValueError naming `name` unless `value` is a string with something besides whitespace."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def require_non_negative(name: str, value: float) -> None:
    """ValueError naming `name` unless `value` is a finite number >= 0."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
