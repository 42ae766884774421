"""Robot-health diagnostics: each node's `~/status` as a diagnostic_msgs/DiagnosticStatus on /diagnostics.

rqt_robot_monitor, diagnostic_aggregator and most fleet dashboards read the absolute topic
/diagnostics (diagnostic_msgs/DiagnosticArray). Every llm3d node publishes one DiagnosticStatus
there, from the same timer (the sim bridge: the same loop) that publishes its JSON status, named
`<node>: <component>` ("llm3d_mapper: fusion"; under a namespace "robot1/llm3d_mapper: fusion"),
with the whole status flattened into key/values plus a few derived ones, and a level from the
rules below. Each node's `diagnostics_topic` parameter moves it ('' = off).

The rules are pure functions of the status dict and a `Window` (how the status's integer
counters changed over the last `diagnostics_window_s`), so they are tested without ROS.
`CounterWindow` measures the window; `DiagnosticsPublisher` is the only part that needs rclpy.

Levels. The status's level is its worst finding's; its message lists every finding, worst first,
or a one-line summary when all is well. Severity: OK < WARN < STALE < ERROR (a node that is
failing outranks one that waits for input).

  llm3d_mapper: fusion
    STALE  no camera image received yet
    WARN   no camera image for frame_timeout_s or longer
    WARN   over max_drop_ratio of the images received in the window dropped: pairs replaced in the
           queue by a newer one (fusion slower than the camera), images without a colour/depth
           partner (stamps further apart than sync_tolerance_s); judged from MIN_IMAGES images on.
           A stuck fusion worker shows here too (every pair replaced, none fused).
    WARN   bad input counted in the window (bad image, no camera_info, no transform...), with
           the last error's text
    ERROR  fusion_failed or save_failed counted in the window (the map is not built / not saved)
    WARN   TF samples refused (malformed, static conflict, future, past) or the clock jumped back
  llm3d_reasoner: inference
    ERROR  the model failed to load;  WARN  the model is loading;  WARN  no checkpoint (untrained)
    WARN   no map yet (unless answering about the camera view), or the newest save failed to load
    WARN   request queue full (pending >= max_pending), or requests refused as busy in the window
    WARN   requests timed out in the window;  ERROR  internal errors in the window
  llm3d_sim_bridge: simulation
    STALE  no frame rate measured yet (first status)
    WARN   achieved rate below min_rate_ratio x rate_hz
    WARN   bad cmd_vel / goal messages ignored in the window;  ERROR  simulation steps failed
  The active goal, latencies, map age and the rest are values, not levels: an old offline map or
  a goal the planner could not reach says nothing about the node's health.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

# diagnostic_msgs/DiagnosticStatus levels (the message's byte constants, as ints).
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}
_SEVERITY = {OK: 0, WARN: 1, STALE: 2, ERROR: 3}

MIN_IMAGES = 10  # a drop ratio over fewer images (a second of a slow camera) says nothing
MAPPER_FAILURES = ("fusion_failed", "save_failed")  # the node's own faults; the other kinds are bad input
TF_PROBLEMS = ("malformed", "static_conflict", "future", "past", "clock_jump_back")
REASONER_COMPONENT, MAPPER_COMPONENT, SIM_BRIDGE_COMPONENT = "inference", "fusion", "simulation"


@dataclass(frozen=True)
class Window:
    """How a status's integer fields changed recently (what CounterWindow measures).

    span_s: seconds the deltas cover (0 for a node's first status, whose counts are all new).
    deltas: dotted status key ("errors.no_transform") -> increase over span_s.
    unchanged_s: dotted status key -> seconds it has kept its current value.
    """

    span_s: float = 0.0
    deltas: Mapping[str, float] = field(default_factory=dict)
    unchanged_s: Mapping[str, float] = field(default_factory=dict)

    def delta(self, key: str) -> float:
        return self.deltas.get(key, 0)

    def rate(self, key: str) -> float | None:
        """Increase per second of `key`, or None before the window spans any time."""
        return self.delta(key) / self.span_s if self.span_s > 0 else None

    def increased(self, prefix: str) -> dict[str, float]:
        """{key without prefix: increase} of the keys under `prefix` that increased."""
        return {k[len(prefix):]: v for k, v in self.deltas.items() if k.startswith(prefix) and v > 0}

    def label(self) -> str:
        return f"in the last {self.span_s:.0f} s" if self.span_s >= 1 else "since start"


@dataclass(frozen=True)
class Diagnosis:
    """A level (OK/WARN/ERROR/STALE), its message, and derived values to show beside the status's own."""

    level: int
    message: str
    values: dict[str, Any] = field(default_factory=dict)


def flatten(status: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {dotted key: leaf value} (lists stay leaves)."""
    flat: dict[str, Any] = {}
    for key, value in status.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


class CounterWindow:
    """Keeps a node's recent status snapshots and measures the last `window_s` of them."""

    def __init__(self, window_s: float) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self.window_s = window_s
        self._snapshots: deque[tuple[float, dict[str, int]]] = deque()
        self._since: dict[str, tuple[int, float]] = {}  # key -> (value, stamp it first had it)

    def update(self, stamp: float, status: Mapping[str, Any]) -> Window:
        """Adds the status taken at `stamp` (seconds); returns the window ending there."""
        counters = {k: v for k, v in flatten(status).items() if isinstance(v, int) and not isinstance(v, bool)}
        if not self._snapshots:  # counting started with the node: its first counts all fall in the window
            self._snapshots.append((stamp, dict.fromkeys(counters, 0)))
        # Baseline: the newest snapshot at least window_s old (else the oldest), so the span covers the window.
        while len(self._snapshots) > 1 and self._snapshots[1][0] <= stamp - self.window_s:
            self._snapshots.popleft()
        base_stamp, base = self._snapshots[0]
        self._snapshots.append((stamp, counters))
        unchanged = {}
        for key, value in counters.items():
            if key not in self._since or self._since[key][0] != value:
                self._since[key] = (value, stamp)
            unchanged[key] = stamp - self._since[key][1]
        deltas = {k: v - base.get(k, 0) for k, v in counters.items()}
        return Window(max(0.0, stamp - base_stamp), deltas, unchanged)


def combine(findings: list[tuple[int, str]], ok_message: str, values: dict[str, Any]) -> Diagnosis:
    """The worst finding's level and every finding's message (worst first); OK + summary when none."""
    if not findings:
        return Diagnosis(OK, ok_message, values)
    ordered = sorted(findings, key=lambda f: -_SEVERITY[f[0]])  # stable: rule order within a level
    return Diagnosis(ordered[0][0], "; ".join(message for _, message in ordered), values)


def _counts(counts: Mapping[str, float]) -> str:
    return ", ".join(f"{kind} {n:g}" for kind, n in counts.items())


def _last_error(status: Mapping[str, Any], kinds: Collection[str]) -> str:
    last = status.get("last_error") or {}
    return f" (last: {last['message']})" if last.get("message") and last.get("kind") in kinds else ""


# ---------------------------------------------------------------------------------------- the rules
def mapper_diagnosis(status: Mapping[str, Any], window: Window, *, frame_timeout_s: float,
                     max_drop_ratio: float) -> Diagnosis:
    """llm3d_mapper's status -> its level (rules in the module docstring)."""
    received = status.get("received", {})
    images = window.delta("received.color") + window.delta("received.depth")
    stale, unpaired = window.delta("dropped.stale"), window.delta("dropped.unpaired")
    drop_ratio = min(1.0, (2 * stale + unpaired) / images) if images else 0.0  # a stale pair is two images
    quiet_s = min(window.unchanged_s.get("received.color", 0.0), window.unchanged_s.get("received.depth", 0.0))
    fused_hz = window.rate("fused")
    findings: list[tuple[int, str]] = []
    if received.get("color", 0) + received.get("depth", 0) == 0:
        findings.append((STALE, "no camera frames received yet"))
    elif quiet_s >= frame_timeout_s:
        findings.append((WARN, f"no camera frames for {quiet_s:.0f} s"))
    if images >= MIN_IMAGES and drop_ratio > max_drop_ratio:
        # A stuck worker shows here too: every pair is replaced in the queue and nothing is fused.
        findings.append((WARN, f"dropped {drop_ratio:.0%} of camera images {window.label()}, fused "
                               f"{window.delta('fused'):g} ({stale:g} pairs replaced in the queue: fusion slower "
                               f"than the camera; {unpaired:g} images without a colour/depth partner within "
                               f"sync_tolerance_s)"))
    errors = window.increased("errors.")
    failures = {k: n for k, n in errors.items() if k in MAPPER_FAILURES}
    bad_input = {k: n for k, n in errors.items() if k not in MAPPER_FAILURES}
    if failures:
        findings.append((ERROR, f"{_counts(failures)} {window.label()}{_last_error(status, MAPPER_FAILURES)}"))
    if bad_input:
        findings.append((WARN, f"bad input {window.label()}: {_counts(bad_input)}{_last_error(status, bad_input)}"))
    tf = {k: n for k, n in window.increased("tf.").items() if k in TF_PROBLEMS}
    if tf:
        findings.append((WARN, f"TF samples refused or clock jumps {window.label()}: {_counts(tf)}"))
    summary = status.get("map", {})
    rate = f"fusing {fused_hz:.1f} frames/s" if fused_hz is not None else f"{status.get('fused', 0)} frames fused"
    ok = f"{rate}; map of {summary.get('voxels', 0)} voxels, {summary.get('objects', 0)} objects"
    values = {"fused_hz": round(fused_hz, 2) if fused_hz is not None else "", "drop_ratio": round(drop_ratio, 3),
              "seconds_since_camera_frame": round(quiet_s, 1), "window_s": round(window.span_s, 1)}
    return combine(findings, ok, values)


def reasoner_diagnosis(status: Mapping[str, Any], window: Window) -> Diagnosis:
    """llm3d_reasoner's status -> its level (rules in the module docstring)."""
    model, map_ = status.get("model", {}), status.get("map", {})
    state = model.get("state", "")
    findings: list[tuple[int, str]] = []
    if state == "failed":
        findings.append((ERROR, model.get("message") or "the model could not be loaded"))
    elif state == "loading":
        findings.append((WARN, "loading the model"))
    elif state != "ready":
        findings.append((WARN, f"model state {state!r}"))
    else:
        if not model.get("trained", True):
            findings.append((WARN, "no checkpoint: the scene encoder is untrained and answers are arbitrary"))
        if map_.get("error"):
            findings.append((WARN, f"map not loaded: {map_['error']}"))
        elif not map_.get("version") and map_.get("input") != "camera view":
            findings.append((WARN, f"no map yet (waiting for a save in {map_.get('dir', 'map_dir')})"))
    pending, max_pending = status.get("pending", 0), status.get("max_pending", 0)
    if max_pending and pending >= max_pending:
        findings.append((WARN, f"request queue full ({pending} of {max_pending} waiting)"))
    errors = window.increased("errors.")
    if errors.get("busy"):
        findings.append((WARN, f"{errors['busy']:g} requests refused as busy {window.label()}"))
    if errors.get("timeout"):
        findings.append((WARN, f"{errors['timeout']:g} requests timed out {window.label()}"
                               f"{_last_error(status, ('timeout',))}"))
    if errors.get("internal"):
        findings.append((ERROR, f"{errors['internal']:g} internal errors {window.label()}"
                                f"{_last_error(status, ('internal',))}"))
    loaded_at = map_.get("loaded_at")
    age_s = status.get("stamp", 0.0) - loaded_at if loaded_at else None
    if map_.get("version"):
        about = (f"map save {map_['version']}: {map_.get('objects', 0)} objects from {map_.get('frames', 0)} frames"
                 + (f", loaded {age_s:.0f} s ago" if age_s is not None else ""))
    else:
        about = "no map yet: answers refer to the camera view"
    ok = f"model ready; {about}; {pending} of {max_pending} request places taken"
    return combine(findings, ok, {"map_age_s": round(age_s, 1) if age_s is not None else "",
                                  "window_s": round(window.span_s, 1)})


def sim_bridge_diagnosis(status: Mapping[str, Any], window: Window, *, requested_hz: float,
                         min_rate_ratio: float) -> Diagnosis:
    """llm3d_sim_bridge's status -> its level (rules in the module docstring)."""
    rate, frames = float(status.get("rate_hz", 0.0)), status.get("frames", 0)
    findings: list[tuple[int, str]] = []
    if frames <= 1 and rate == 0.0:  # the first status comes with the first frame: no rate yet
        findings.append((STALE, "no frame rate measured yet"))
    elif rate < min_rate_ratio * requested_hz:
        findings.append((WARN, f"simulating {rate:.1f} of the requested {requested_hz:g} frames/s"))
    errors = window.increased("errors.")
    if errors.get("step_failed"):
        findings.append((ERROR, f"{errors['step_failed']:g} simulation steps failed {window.label()}"))
    bad = {k: n for k, n in errors.items() if k != "step_failed"}
    if bad:
        findings.append((WARN, f"ignored bad input {window.label()}: {_counts(bad)}"))
    goal = status.get("goal", {})
    if goal.get("state") == "active":
        doing = f"driving to a goal, {goal.get('remaining_m', 0.0):.2f} m left"
    else:
        doing = f"{status.get('mode', 'idle')}; last goal {goal.get('state', 'idle')}"
    ok = f"{rate:.1f} of {requested_hz:g} frames/s; {doing}"
    return combine(findings, ok, {"requested_hz": requested_hz, "window_s": round(window.span_s, 1)})


# ---------------------------------------------------------------------------------------- messages
def status_name(fully_qualified_node_name: str, component: str) -> str:
    """'/robot1/llm3d_mapper', 'fusion' -> 'robot1/llm3d_mapper: fusion' (diagnostic_updater's 'node: task')."""
    return f"{fully_qualified_node_name.lstrip('/')}: {component}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(round(value, 4))
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return "" if value is None else str(value)


def diagnostic_status_msg(name: str, hardware_id: str, diagnosis: Diagnosis, status: Mapping[str, Any]):
    """diagnostic_msgs/DiagnosticStatus: the diagnosis, then the status flattened ('node'/'stamp' left out)."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    flat = {k: v for k, v in flatten(status).items() if k not in ("node", "stamp")}
    values = [KeyValue(key=k, value=_text(v)) for k, v in {**diagnosis.values, **flat}.items()]
    return DiagnosticStatus(level=bytes([diagnosis.level]), name=name, message=diagnosis.message,
                            hardware_id=hardware_id, values=values)


class DiagnosticsPublisher:
    """One node's DiagnosticStatus on `topic` ('' = off), from the status dict it publishes anyway."""

    def __init__(self, node, topic: str, component: str, rule: Callable[[Mapping[str, Any], Window], Diagnosis],
                 window_s: float) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self._node, self._rule, self._Array = node, rule, DiagnosticArray
        self._window = CounterWindow(window_s)
        self.name = status_name(node.get_fully_qualified_name(), component)
        # Default QoS (reliable, volatile, depth 10), as diagnostic_updater's publisher: aggregators match it.
        self._pub = node.create_publisher(DiagnosticArray, topic, 10) if topic else None

    def publish(self, status: Mapping[str, Any], hardware_id: str = "") -> Diagnosis | None:
        """Judges `status` and publishes it; returns the diagnosis (None when off)."""
        if self._pub is None:
            return None
        diagnosis = self._rule(status, self._window.update(float(status.get("stamp", 0.0)), status))
        array = self._Array(status=[diagnostic_status_msg(self.name, hardware_id, diagnosis, status)])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(array)
        return diagnosis
