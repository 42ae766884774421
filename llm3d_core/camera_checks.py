"""Judging a camera driver's output against a camera profile (`llm3d doctor --camera`).

Each function takes what a probe collected from the ROS graph (messages, arrival times, the TF
tree) and returns a `CameraCheck`: PASS/FAIL, what was seen, and for a failure what to do about
it. No ROS here: messages are read by field name (as `llm3d_core.messages` does), so tests build
them in memory; `llm3d_ros.camera_check` collects them from a live graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llm3d_core.camera_profiles import CameraProfile
from llm3d_core.messages import ConversionError, camera_info_to_K, decode_depth_m, decode_rgb, is_compressed

DEPTH_RANGE_M = (0.1, 10.0)  # a plausible median depth indoors; outside it the depth scale is wrong
MIN_VALID_FRACTION = 0.05  # fewer valid depth pixels: covered lens, emitter off, or nothing in range
MIN_PAIRED_FRACTION = 0.5  # depth frames that must find a colour frame within the sync tolerance


@dataclass
class CameraCheck:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    hint: str = ""  # what to do when it fails


@dataclass
class StreamSample:
    """What a probe saw of one topic during its window."""

    topic: str  # the resolved name (namespace applied)
    expected_type: str  # e.g. sensor_msgs/msg/Image
    publisher_types: list[str] = field(default_factory=list)  # types of the topic's publishers in the graph
    arrivals_s: list[float] = field(default_factory=list)  # monotonic receive times
    stamps_ns: list[int] = field(default_factory=list)  # header stamps
    last: Any = None  # the newest message

    @property
    def count(self) -> int:
        return len(self.arrivals_s)

    def rate_hz(self) -> float:
        """Messages per second over the receive times (0 with fewer than two)."""
        if self.count < 2 or self.arrivals_s[-1] <= self.arrivals_s[0]:
            return 0.0
        return (self.count - 1) / (self.arrivals_s[-1] - self.arrivals_s[0])


def message_encoding(msg: Any) -> str:
    """An Image's encoding, or the source encoding a CompressedImage's format names ('' if none)."""
    if is_compressed(msg):
        head = str(msg.format).split(";")[0].strip()
        return head if ";" in str(msg.format) else ""  # old plugins write just "jpeg"
    return str(msg.encoding)


def _start_hint(profile: CameraProfile) -> str:
    return f"start {profile.driver}: {profile.launch}" if profile.launch else f"start {profile.driver}"


def judge_stream(name: str, sample: StreamSample, window_s: float, profile: CameraProfile) -> CameraCheck | None:
    """The failure shared by every topic (no publisher, wrong type, nothing received), else None."""
    wrong = sorted({t for t in sample.publisher_types if t != sample.expected_type})
    if not sample.publisher_types and sample.count == 0:
        return CameraCheck(name, False, f"no publisher on {sample.topic}", _start_hint(profile)
                           + " (and check the topic names and namespace in " + profile.path.name + ")")
    if wrong and sample.count == 0:
        return CameraCheck(name, False, f"{sample.topic} carries {', '.join(wrong)}, expected {sample.expected_type}",
                           "the profile's transport does not match the driver (raw Image vs CompressedImage topics)")
    if sample.count == 0:
        return CameraCheck(name, False, f"{len(sample.publisher_types)} publisher(s) on {sample.topic} but no message "
                           f"in {window_s:g} s", "the driver is stalled, or its QoS does not match (try a reliable "
                           "publisher; check the driver's log)")
    return None


def _rate_text(sample: StreamSample, profile: CameraProfile) -> tuple[str, bool]:
    rate = sample.rate_hz()
    return f"{rate:.1f} Hz", rate >= profile.min_rate_hz


def judge_color(sample: StreamSample, window_s: float, profile: CameraProfile) -> CameraCheck:
    """Colour stream: publishing, type, encoding accepted by the profile, decodable, resolution, rate."""
    name = "colour image"
    failed = judge_stream(name, sample, window_s, profile)
    if failed:
        return failed
    encoding = message_encoding(sample.last)
    try:
        h, w = decode_rgb(sample.last).shape[:2]
    except ConversionError as err:
        return CameraCheck(name, False, f"{sample.topic}: {err}", f"set the driver to {'/'.join(profile.color_encodings)}")
    if encoding and encoding not in profile.color_encodings:
        return CameraCheck(name, False, f"{sample.topic} is {encoding}, the profile expects "
                           f"{' or '.join(profile.color_encodings)}", f"{_start_hint(profile)} (colour format)")
    rate, fast = _rate_text(sample, profile)
    detail = f"{encoding or 'compressed'} {w}x{h} at {rate} on {sample.topic}"
    if not fast:
        return CameraCheck(name, False, f"{detail}: below {profile.min_rate_hz:g} Hz",
                           "lower the resolution or the driver's load (USB 2 link? CPU?), or use a compressed transport")
    return CameraCheck(name, True, detail)


def depth_statistics(depth_m: np.ndarray) -> tuple[float, float]:
    """(fraction of valid pixels, median valid depth in metres; nan when none)."""
    valid = depth_m > 0  # (H, W); decoding already zeroed NaN, inf, 65535 and negatives
    fraction = float(valid.mean()) if depth_m.size else 0.0
    median = float(np.median(depth_m[valid])) if valid.any() else float("nan")
    return fraction, median


def judge_depth(sample: StreamSample, window_s: float, profile: CameraProfile) -> CameraCheck:
    """Depth stream: publishing, encoding (16UC1/32FC1 as the profile says), rate, and the depth scale's
    plausibility: the median valid depth, scaled by depth_scale, must lie within DEPTH_RANGE_M."""
    name = "depth image"
    failed = judge_stream(name, sample, window_s, profile)
    if failed:
        return failed
    encoding = message_encoding(sample.last)
    if encoding and encoding not in profile.depth_encodings:
        return CameraCheck(name, False, f"{sample.topic} is {encoding}, the profile expects "
                           f"{' or '.join(profile.depth_encodings)}", "this is not the driver's depth stream, or "
                           "its depth unit differs from the profile's")
    try:
        depth_m = decode_depth_m(sample.last, profile.depth_scale)
    except ConversionError as err:
        return CameraCheck(name, False, f"{sample.topic}: {err}", "publish 16UC1 (millimetres) or 32FC1 (metres) depth")
    h, w = depth_m.shape
    fraction, median = depth_statistics(depth_m)
    rate, fast = _rate_text(sample, profile)
    detail = f"{encoding or 'compressed'} {w}x{h} at {rate} on {sample.topic}, {100 * fraction:.0f}% valid"
    if fraction < MIN_VALID_FRACTION:
        return CameraCheck(name, False, f"{detail}: under {100 * MIN_VALID_FRACTION:.0f}% of pixels have depth",
                           "uncover the lens, point the camera at the scene, check the IR emitter / depth mode")
    detail += f", median {median:.2f} m"
    low, high = DEPTH_RANGE_M
    if not low <= median <= high:
        return CameraCheck(name, False, f"{detail} with depth_scale {profile.depth_scale:g}: outside {low:g}-{high:g} m",
                           "depth_scale in the profile is wrong for this driver (16UC1 units per metre: 1000 = "
                           "millimetres; 32FC1 is metres)")
    if not fast:
        return CameraCheck(name, False, f"{detail}: below {profile.min_rate_hz:g} Hz",
                           "lower the resolution or the driver's load, or use a compressed transport")
    return CameraCheck(name, True, detail)


def _size(msg: Any, depth: bool, depth_scale: float) -> tuple[int, int] | None:
    try:
        arr = decode_depth_m(msg, depth_scale) if depth else decode_rgb(msg)
    except ConversionError:
        return None
    return arr.shape[1], arr.shape[0]


def judge_registration(color: StreamSample, depth: StreamSample, profile: CameraProfile) -> CameraCheck:
    """Depth registered to colour: equal resolution (the mapper reads both with the colour intrinsics)."""
    name = "depth registered to colour"
    if color.last is None or depth.last is None:
        return CameraCheck(name, False, "cannot check: " + " and ".join(
            what for what, s in (("no colour image", color), ("no depth image", depth)) if s.last is None))
    cs, ds = _size(color.last, False, profile.depth_scale), _size(depth.last, True, profile.depth_scale)
    if cs is None or ds is None:
        return CameraCheck(name, False, "cannot check: an image does not decode (see above)")
    if cs != ds:
        return CameraCheck(name, False, f"depth {ds[0]}x{ds[1]} differs from colour {cs[0]}x{cs[1]}: depth is not "
                           "aligned to colour (aligned depth required)", _start_hint(profile)
                           + f" (aligned / registered depth at the colour resolution, on {profile.depth_topic})")
    return CameraCheck(name, True, f"colour and depth both {cs[0]}x{cs[1]}")


def judge_camera_info(info: StreamSample, color: StreamSample, window_s: float, profile: CameraProfile) -> CameraCheck:
    """CameraInfo: present, K calibrated (fx, fy > 0), for the colour image's size."""
    name = "camera info"
    failed = judge_stream(name, info, window_s, profile)
    if failed:
        return failed
    msg = info.last
    try:
        K = camera_info_to_K(msg)
    except ConversionError as err:
        return CameraCheck(name, False, f"{info.topic}: {err}", "calibrate the camera or fix the driver's calibration file")
    detail = f"{msg.width}x{msg.height}, fx {K[0, 0]:.1f} fy {K[1, 1]:.1f} on {info.topic}"
    size = _size(color.last, False, profile.depth_scale) if color.last is not None else None
    if size is not None and (int(msg.width), int(msg.height)) != size:
        return CameraCheck(name, False, f"{detail}: the colour image is {size[0]}x{size[1]}",
                           f"{profile.camera_info_topic} must be the colour camera's info at the colour resolution")
    return CameraCheck(name, True, detail)


def judge_frames(color: StreamSample, depth: StreamSample, info: StreamSample, profile: CameraProfile) -> CameraCheck:
    """header.frame_id: set, the same on colour, registered depth and CameraInfo."""
    name = "image frame ids"
    frames = {what: str(s.last.header.frame_id).lstrip("/") for what, s in
              (("colour", color), ("depth", depth), ("camera info", info)) if s.last is not None}
    if "colour" not in frames:
        return CameraCheck(name, False, "cannot check: no colour image")
    if not frames["colour"]:
        return CameraCheck(name, False, f"{color.topic} has an empty header.frame_id",
                           "set the driver's frame / tf_prefix, or set camera_frame in the profile")
    differ = {what: f for what, f in frames.items() if f != frames["colour"]}
    if differ:
        return CameraCheck(name, False, f"colour is in {frames['colour']} but " + ", ".join(
            f"{what} in {f or '(empty)'}" for what, f in differ.items()),
            "registered depth and the colour CameraInfo carry the colour optical frame; is this the aligned depth topic?")
    detail = f"{frames['colour']}"
    if profile.camera_frame:
        detail += f" (the mapper looks up camera_frame {profile.camera_frame})"
    elif profile.optical_frame and profile.optical_frame != frames["colour"]:
        detail += f" (the profile's driver usually says {profile.optical_frame}; fine if TF has it)"
    return CameraCheck(name, True, detail)


def judge_pairing(color: StreamSample, depth: StreamSample, tolerance_s: float) -> CameraCheck:
    """Colour and depth stamps pair within the mapper's sync tolerance (unpaired frames are never fused)."""
    name = "colour/depth stamps pair"
    if not color.stamps_ns or not depth.stamps_ns:
        return CameraCheck(name, False, "cannot check: no colour or no depth image")
    c = np.sort(np.asarray(color.stamps_ns, dtype=np.int64))
    d = np.asarray(depth.stamps_ns, dtype=np.int64)
    idx = np.clip(np.searchsorted(c, d), 1, max(len(c) - 1, 1))
    nearest = np.minimum(np.abs(d - c[idx - 1]), np.abs(d - c[np.minimum(idx, len(c) - 1)]))  # (N,) ns
    tol_ns = int(tolerance_s * 1e9)
    paired = float(np.mean(nearest <= tol_ns))
    detail = f"{100 * paired:.0f}% of depth frames within {1000 * tolerance_s:g} ms of a colour frame " \
             f"(median offset {np.median(nearest) / 1e6:.1f} ms)"
    if paired < MIN_PAIRED_FRACTION:
        return CameraCheck(name, False, detail, "raise llm3d_mapper's sync_tolerance_s, or enable the driver's "
                           "colour/depth synchronisation")
    return CameraCheck(name, True, detail)


# ---------------------------------------------------------------------------- TF
def _up(frames: Mapping[str, str], frame: str) -> list[str]:
    """[frame, parent, grandparent, ..., root] (a loop ends the walk)."""
    chain = [frame]
    while chain[-1] in frames and frames[chain[-1]] not in chain:
        chain.append(frames[chain[-1]])
    return chain


def _link_hint(parent: str, child: str) -> str:
    """What usually publishes the missing transform parent -> child, judged by the frame names."""
    low = child.lower()
    if "odom" in low:
        return (f"Nav2/SLAM localisation ({parent} -> {child}) not running? Start AMCL or slam_toolbox (for a "
                f"test: `static_transform_publisher --frame-id {parent} --child-frame-id {child}`)")
    if "base" in low or "footprint" in low:
        return f"no odometry ({parent} -> {child}): is the robot base driver (or its EKF) running?"
    return (f"the camera is not mounted on the robot in TF: add {child} to the URDF (robot_state_publisher) "
            f"or publish a static transform base_link -> {child}")


def _missing_parent(frames: Mapping[str, str], map_frame: str, below_map: list[str], child: str) -> str:
    """The frame of the map's tree that `child` (the top of the camera's tree) usually hangs from:
    odom under map, base_link under odom, the camera under base_link."""
    kind = child.lower()
    odom = [f for f in below_map if "odom" in f.lower()]
    base = [f for f in below_map if "base" in f.lower() or "footprint" in f.lower()]
    if "odom" in kind:
        return map_frame
    if "base" in kind or "footprint" in kind:
        return odom[0] if odom else map_frame
    if base:
        return "base_link" if "base_link" in base else max(base, key=lambda f: len(_up(frames, f)))
    return max(below_map, key=lambda f: len(_up(frames, f))) if below_map else map_frame


def judge_tf_chain(frames: Mapping[str, str], map_frame: str, camera_frame: str) -> CameraCheck:
    """Whether `frames` (child -> parent, as received on /tf and /tf_static) connect camera_frame to
    map_frame, and otherwise which link is missing, with what usually publishes it."""
    name = f"TF {map_frame} -> camera"
    map_frame, camera_frame = map_frame.lstrip("/"), camera_frame.lstrip("/")
    if not camera_frame:
        return CameraCheck(name, False, "cannot check: no camera frame (no colour image and no camera_frame)")
    known = set(frames) | set(frames.values())
    if not frames:
        return CameraCheck(name, False, "nothing received on /tf or /tf_static",
                           "start robot_state_publisher, odometry and localisation (or the simulator)")
    if camera_frame not in known:
        return CameraCheck(name, False, f"no transform mentions {camera_frame} (known frames: "
                           f"{', '.join(sorted(known)[:8])}{', ...' if len(known) > 8 else ''})",
                           "enable the driver's TF (publish_tf) or add the camera to the URDF; "
                           "set camera_frame if the images' frame is not in TF")
    up = _up(frames, camera_frame)
    if map_frame in up:
        path = list(reversed(up[: up.index(map_frame) + 1]))
        return CameraCheck(name, True, " -> ".join(path))
    top = up[-1]
    chain = " <- ".join(up)
    if map_frame in known:
        # The map frame has its own tree: the missing link joins that tree to the camera's top frame.
        below_map = sorted(child for child in frames if map_frame in _up(frames, child))
        parent = _missing_parent(frames, map_frame, below_map, top)
        return CameraCheck(name, False, f"no transform {parent} -> {top} (camera chain: {chain}; {map_frame} tree: "
                           f"{', '.join([map_frame, *below_map])})", _link_hint(parent, top))
    return CameraCheck(name, False, f"no transform {map_frame} -> {top} (camera chain: {chain})", _link_hint(map_frame, top))


def judge_tf_at_stamp(chain: CameraCheck, error: str | None) -> CameraCheck:
    """The chain check, failed when a lookup at an image's stamp failed (`error`): the mapper looks up
    TF at each image's stamp, so a chain that exists only at other times does not help it."""
    if not chain.ok or error is None:
        return CameraCheck(chain.name, chain.ok, chain.detail + (", also at image stamps" if chain.ok else ""), chain.hint)
    return CameraCheck(chain.name, False, f"{chain.detail}, but not at an image stamp: {error}",
                       "the camera's and TF's clocks differ (use_sim_time? the driver's timestamp source?) or TF "
                       "arrives late")


def judge_all(color: StreamSample, depth: StreamSample, info: StreamSample, frames: Mapping[str, str],
              tf_error: str | None, window_s: float, profile: CameraProfile) -> list[CameraCheck]:
    """Every check of `llm3d doctor --camera`, in report order."""
    camera_frame = profile.camera_frame or (str(color.last.header.frame_id) if color.last is not None else "")
    return [
        judge_color(color, window_s, profile),
        judge_depth(depth, window_s, profile),
        judge_registration(color, depth, profile),
        judge_camera_info(info, color, window_s, profile),
        judge_frames(color, depth, info, profile),
        judge_pairing(color, depth, profile.sync_tolerance_s),
        judge_tf_at_stamp(judge_tf_chain(frames, profile.map_frame, camera_frame), tf_error),
    ]


def stamps_between(stamps_ns: Sequence[int]) -> int:
    """A stamp from the middle of the window (TF there has samples on both sides), 0 when none."""
    return int(sorted(stamps_ns)[len(stamps_ns) // 2]) if stamps_ns else 0
