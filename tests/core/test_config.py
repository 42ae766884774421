from dataclasses import dataclass, field

import pytest

from llm3d_core.config import ConfigError, config_from_dict, load_config, load_yaml, node_parameters
from llm3d_core.device import resolve_device, validate_device_name


@dataclass
class Inner:
    size: float = 0.05
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"size must be > 0, got {self.size}")


@dataclass
class Outer:
    device: str = "auto"
    steps: int = 3
    inner: Inner = field(default_factory=Inner)


def test_nested_and_dotted_keys():
    cfg = config_from_dict(Outer, {"steps": 5, "inner": {"size": 1}, "inner.names": ["a", "b"]})
    assert cfg.steps == 5
    assert cfg.inner.size == 1.0 and isinstance(cfg.inner.size, float)
    assert cfg.inner.names == ["a", "b"]


def test_unknown_key_names_the_path():
    with pytest.raises(ConfigError, match=r"inner\.sise"):
        config_from_dict(Outer, {"inner": {"sise": 0.1}})


def test_wrong_type_and_invalid_value_are_reported():
    with pytest.raises(ConfigError, match="steps: expected int"):
        config_from_dict(Outer, {"steps": "many"})
    with pytest.raises(ConfigError, match="expected int"):
        config_from_dict(Outer, {"steps": True})
    with pytest.raises(ConfigError, match="size must be > 0, got -1"):
        config_from_dict(Outer, {"inner": {"size": -1.0}})


def test_yaml_sections(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("my_node:\n  ros__parameters:\n    steps: 7\n    inner:\n      size: 0.1\nother: {}\n")
    assert node_parameters(load_yaml(path), "absent") == {}
    cfg = load_config(Outer, "my_node", path, overrides={"device": "cpu"})
    assert (cfg.steps, cfg.inner.size, cfg.device) == (7, 0.1, "cpu")


def test_bad_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_yaml(scalar)


def test_shipped_yaml_parses():
    from llm3d_core.config import DEFAULT_CONFIG

    data = load_yaml(DEFAULT_CONFIG)
    for name, section in data.items():
        assert "ros__parameters" in section, name


def test_devices():
    assert validate_device_name("cuda:1") == "cuda:1"
    for bad in ("gpu", "cuda:x", "cpu:0", ""):
        with pytest.raises(ValueError, match="device must be one of"):
            validate_device_name(bad)
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")


def test_limited_torch_threads_sets_and_restores():
    import torch

    from llm3d_core.device import limited_torch_threads

    before = torch.get_num_threads()
    with limited_torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with limited_torch_threads(0):  # 0: torch's setting, untouched
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), limited_torch_threads(1):
        raise RuntimeError("restored on errors too")
    assert torch.get_num_threads() == before
