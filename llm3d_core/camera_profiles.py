"""Camera profiles: what common RGB-D drivers publish, as parameter overlays for the llm3d nodes.

A profile is a YAML file in launch/cameras/ keyed like launch/llm3d.yaml (`<node>: ros__parameters:`).
Passed as a second parameter file after llm3d.yaml (`llm3d bringup --camera NAME`), it sets the
input topics, transports, frame and depth scale of `llm3d_mapper` and of `llm3d_reasoner`'s
`frame_input`. Its `llm3d_camera_profile` section (no node has that name, so nodes ignore it) says
which driver it is for and what `llm3d doctor --camera NAME` should expect: the driver's launch
settings, the map frame, the colour and depth encodings, a minimum frame rate.

No ROS here: the CLI reads profiles before rclpy starts, and tests merge them with llm3d.yaml.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from llm3d_core.camera_streams import CameraInputConfig
from llm3d_core.config import (DEFAULT_CONFIG, ConfigError, config_from_dict, load_yaml, node_parameters,
                               require_non_empty)
from llm3d_core.messages import COLOR_ENCODINGS, DEPTH_ENCODINGS

PROFILE_SECTION = "llm3d_camera_profile"
MAPPER_NODE = "llm3d_mapper"
REASONER_NODE = "llm3d_reasoner"
# The mapper's camera keys the reasoner's frame_input must repeat (it reads the same camera).
SHARED_KEYS = ("color_topic", "depth_topic", "camera_info_topic", "camera_frame", "depth_scale")


def _launch_dir() -> Path:
    """launch/ of a source checkout (where DEFAULT_CONFIG lives), else <prefix>/share/llm3d/launch of
    an install (setup.py's data_files), searching this Python's prefix and AMENT_PREFIX_PATH."""
    prefixes = [sys.prefix, *[p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]]
    for candidate in (DEFAULT_CONFIG.parent, *(Path(p) / "share" / "llm3d" / "launch" for p in prefixes)):
        if (candidate / "cameras").is_dir():
            return candidate
    return DEFAULT_CONFIG.parent


PROFILE_DIR = _launch_dir() / "cameras"


class CameraProfileError(ConfigError):
    """An unknown profile name, a missing profile file, or a profile whose values do not fit."""


@dataclass
class ProfileInfo:
    """The `llm3d_camera_profile: ros__parameters:` section of a profile.

    Fields:
        driver: the ROS package of the camera driver.
        description: one line for listings.
        launch: how to start the driver as the profile assumes (shown as a hint when a check fails).
        map_frame: the fixed frame the camera must reach in TF ('' = llm3d_mapper's map_frame).
        optical_frame: the header.frame_id the driver stamps its images with ('' = not known).
        color_encodings, depth_encodings: encodings the driver publishes in the assumed setup
            ([] = every encoding llm3d_mapper decodes).
        min_rate_hz: a slower colour or depth stream fails the doctor's check (0 = no minimum).
    """

    driver: str = "unknown"
    description: str = ""
    launch: str = ""
    map_frame: str = ""
    optical_frame: str = ""
    color_encodings: list[str] = field(default_factory=list)
    depth_encodings: list[str] = field(default_factory=list)
    min_rate_hz: float = 5.0

    def __post_init__(self) -> None:
        for name, known in (("color_encodings", COLOR_ENCODINGS), ("depth_encodings", DEPTH_ENCODINGS)):
            unknown = [e for e in getattr(self, name) if e not in known]
            if unknown:
                raise ValueError(f"{name}: {unknown} not decodable by llm3d_mapper; known: {', '.join(known)}")
        if not (math.isfinite(self.min_rate_hz) and self.min_rate_hz >= 0):
            raise ValueError(f"min_rate_hz must be a finite number >= 0, got {self.min_rate_hz!r}")


@dataclass(frozen=True)
class CameraProfile:
    """A camera profile resolved against launch/llm3d.yaml: what the nodes will read, what the driver sends."""

    name: str  # file stem (realsense_d4xx) or the overlay's path
    path: Path  # the overlay file (the second --params-file)
    driver: str
    description: str
    launch: str  # the driver's launch command as assumed ('' = not known)
    color_topic: str  # relative names, as in the parameter file
    depth_topic: str
    camera_info_topic: str
    color_transport: str  # raw | compressed
    depth_transport: str  # raw | compressed | compressedDepth
    camera_frame: str  # '' = the colour image's header.frame_id
    optical_frame: str  # frame the driver stamps images with ('' = not known)
    depth_scale: float  # 16UC1 units per metre
    map_frame: str
    color_encodings: tuple[str, ...]
    depth_encodings: tuple[str, ...]
    min_rate_hz: float
    sync_tolerance_s: float  # llm3d_mapper's colour/depth pairing tolerance

    def __post_init__(self) -> None:
        try:  # the streams as the nodes will read them, checked as the nodes check them
            CameraInputConfig(**{f.name: getattr(self, f.name) for f in fields(CameraInputConfig)})
            require_non_empty("map_frame", self.map_frame)
        except ValueError as err:
            raise CameraProfileError(f"camera profile {self.name}: {err}") from None


def list_profiles() -> list[str]:
    """Names of the shipped profiles (launch/cameras/*.yaml), sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def profile_parameter_file(name_or_path: str | Path) -> Path:
    """The overlay YAML of a profile: a shipped name (`realsense_d4xx`) or a path to a YAML file.

    Raises CameraProfileError (a ValueError) naming the known profiles for an unknown name."""
    text = str(name_or_path).strip()
    if not text:
        raise CameraProfileError(f"empty camera profile; known profiles: {', '.join(list_profiles())}")
    if text in list_profiles():
        return PROFILE_DIR / f"{text}.yaml"
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or os.sep in text:
        if not path.is_file():
            raise CameraProfileError(f"camera profile file not found: {path}")
        return path.resolve()
    raise CameraProfileError(f"unknown camera profile {text!r}; known profiles: {', '.join(list_profiles())} "
                             "(or the path of a YAML overlay)")


def _nested(params: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys (`a.b: 1`, as ROS flattens parameters) as nested mappings, so merges see one shape."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        head, _, rest = str(key).partition(".")
        value = _nested(value) if isinstance(value, Mapping) else value
        if rest:
            value = _nested({rest: value})
        if isinstance(value, Mapping) and isinstance(out.get(head), Mapping):
            out[head] = merge_parameters(out[head], value)
        else:
            out[head] = value
    return out


def merge_parameters(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """`overlay` over `base` as ROS applies two --params-file: per parameter, nested mappings merged,
    any other value replaced."""
    merged = _nested(base)
    for key, value in _nested(overlay).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_parameters(merged[key], value)
        else:
            merged[key] = value
    return merged


def merged_parameters(name_or_path: str | Path, base: str | Path | None = None) -> dict[str, Any]:
    """The parameter file `base` (default launch/llm3d.yaml) with the profile's overlay applied."""
    return merge_parameters(load_yaml(base or DEFAULT_CONFIG), load_yaml(profile_parameter_file(name_or_path)))


def load_profile(name_or_path: str | Path, base: str | Path | None = None) -> CameraProfile:
    """A profile by name or overlay path, completed from `base` (default launch/llm3d.yaml) for keys
    the overlay leaves out. Raises CameraProfileError (a ValueError) for an unknown or invalid one."""
    path = profile_parameter_file(name_or_path)
    name = path.stem if path.parent == PROFILE_DIR else str(path)
    info = config_from_dict(ProfileInfo, node_parameters(load_yaml(path), PROFILE_SECTION), PROFILE_SECTION)
    merged = merged_parameters(path, base)
    mapper = node_parameters(merged, MAPPER_NODE)
    frame_input = node_parameters(merged, REASONER_NODE).get("frame_input") or {}
    differ = [key for key in SHARED_KEYS if key in frame_input and key in mapper and frame_input[key] != mapper[key]]
    if differ:
        raise CameraProfileError(f"camera profile {name}: {REASONER_NODE}.frame_input and {MAPPER_NODE} read different "
                                 f"cameras ({', '.join(f'{k}: {frame_input[k]!r} vs {mapper[k]!r}' for k in differ)}); "
                                 f"set {REASONER_NODE}.frame_input's keys as {MAPPER_NODE}'s")

    def value(key: str, default: Any) -> Any:
        return mapper.get(key, default)

    return CameraProfile(
        name=name, path=path, driver=info.driver, description=info.description, launch=info.launch,
        color_topic=value("color_topic", ""), depth_topic=value("depth_topic", ""),
        camera_info_topic=value("camera_info_topic", ""),
        color_transport=value("color_transport", "raw"), depth_transport=value("depth_transport", "raw"),
        camera_frame=str(value("camera_frame", "") or ""), optical_frame=info.optical_frame,
        depth_scale=float(value("depth_scale", 1000.0)), map_frame=info.map_frame or value("map_frame", "map"),
        color_encodings=tuple(info.color_encodings or COLOR_ENCODINGS),
        depth_encodings=tuple(info.depth_encodings or DEPTH_ENCODINGS),
        min_rate_hz=info.min_rate_hz, sync_tolerance_s=float(value("sync_tolerance_s", 0.02)),
    )
