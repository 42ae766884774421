"""`llm3d bench soak`: the whole stack under a robot's abuse for M minutes.

`llm3d bringup --sim` runs as a child process (simulator at `rate_hz`, mapper, reasoner with the
shipped checkpoint) while this process plays everything that hammers a robot's stack:

- every `burst_period_s`, `burst` asks at once, one per client (a fleet of callers);
- every `bad_period_s`, bad sensor input: a colour image with an unknown encoding, a truncated
  one, a /tf sample that contradicts the static camera mount, an odom -> base_link sample
  stamped a year ahead;
- at `kill_at` of the run, `kill -9` of `kill_node` (bringup respawns it; the mapper resumes).

It counts every request (answered, refused as busy, lost = no reply within `reply_timeout_s`),
the longest reply, frames published / fused / dropped, each node's resident memory over time,
crashes (node exits other than the injected kill) and the map's frames before the kill and
after the restart. `run_soak` returns the JSON; `soak_rows` the table; `plot_soak` the PNG of
the memory curves.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm3d_ros.child_process import ChildProcess, process_memory_gb
from llm3d_ros.env import apply_ros_environment, ros_environment

NODES = ("llm3d_sim_bridge", "llm3d_mapper", "llm3d_reasoner")
QUESTIONS = ("What is in the room?", "Is there a chair?", "What color is the table?", "How many objects are there?",
             "Where is the sofa?")
RSS_TARGET_GB = 1.5  # per node, mapper and reasoner (issue #21)
YEAR_NS = 365 * 86400 * 10**9


@dataclass
class SoakConfig:
    """One soak run; every field is a `llm3d bench soak` option."""

    minutes: float = 10.0
    rate_hz: float = 30.0  # simulated camera, TF and odometry rate
    burst: int = 50  # asks fired at once, one per client
    burst_period_s: float = 60.0
    bad_period_s: float = 5.0
    kill_node: str = "llm3d_mapper"  # '' = no injected crash
    kill_at: float = 0.5  # share of the run
    reply_timeout_s: float = 150.0  # a request still without a reply after this is lost
    sample_period_s: float = 2.0
    autosave_period_s: float = 10.0
    checkpoint: str = "auto"
    device: str = "cpu"
    params_file: Path | None = None  # default launch/llm3d.yaml
    out: Path = Path("bench_out")
    extra: dict[str, Any] = field(default_factory=dict)  # more {node: {param: value}} overrides

    def __post_init__(self) -> None:
        for name in ("minutes", "rate_hz", "burst_period_s", "bad_period_s", "reply_timeout_s", "sample_period_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.burst < 0:
            raise ValueError(f"burst must be >= 0, got {self.burst}")
        if self.kill_node and self.kill_node not in NODES:
            raise ValueError(f"kill_node must be one of {NODES} or '', got {self.kill_node!r}")
        if not 0 < self.kill_at < 1:
            raise ValueError(f"kill_at must be in (0, 1), got {self.kill_at}")


def soak_params(cfg: SoakConfig, work: Path) -> Path:
    """The parameter file of the soaked stack: the user's (or the shipped) file with the soak's rate,
    a fresh map folder, autosave on, the checkpoint and device."""
    from llm3d_core.config import DEFAULT_CONFIG

    data = yaml.safe_load(Path(cfg.params_file or DEFAULT_CONFIG).read_text()) or {}
    params = {name: data.setdefault(name, {}).setdefault("ros__parameters", {}) for name in NODES}
    map_dir = str((work / "map").resolve())
    params["llm3d_sim_bridge"]["rate_hz"] = float(cfg.rate_hz)
    params["llm3d_mapper"].update(map_path=map_dir, autosave_period_s=float(cfg.autosave_period_s), resume=True)
    params["llm3d_reasoner"].update(map_dir=map_dir, checkpoint=cfg.checkpoint)
    for node, values in cfg.extra.items():
        params.setdefault(node, {}).update(values)
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class _Harness:
    """This process's ROS side: the ask clients, the status listeners, the bad-input publishers."""

    def __init__(self, clients: int) -> None:
        apply_ros_environment()
        import rclpy
        from llm3d_interfaces.srv import Ask
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from tf2_msgs.msg import TFMessage

        from llm3d_ros.qos import latched_qos, sensor_qos, service_qos

        self.rclpy, self.Ask = rclpy, Ask
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("llm3d_soak", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        latched = latched_qos(1)
        self.status: dict[str, dict] = {}
        for name in NODES:
            self.node.create_subscription(String, f"/{name}/status",
                                          lambda m, n=name: self.status.__setitem__(n, json.loads(m.data)), latched)
        self.clients = [self.node.create_client(Ask, "ask", qos_profile=service_qos()) for _ in range(clients)]
        sensor = sensor_qos(2)
        self.color = self.node.create_publisher(Image, "camera/color/image_raw", sensor)
        self.tf = self.node.create_publisher(TFMessage, "/tf", 100)
        self._Image, self._TFMessage = Image, TFMessage

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.executor.spin_once(timeout_sec=max(0.0, min(0.05, end - time.monotonic())))
            if time.monotonic() >= end:
                return

    def publish_bad_input(self, camera_frame: str) -> None:
        import numpy as np

        from llm3d_ros.conversions import matrix_to_transform_stamped, numpy_to_image

        now = self.node.get_clock().now()
        image = numpy_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8", camera_frame, now.to_msg())
        image.encoding = "yuv422"  # unknown to the mapper
        self.color.publish(image)
        truncated = numpy_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8", camera_frame, now.to_msg())
        truncated.data = bytes(truncated.data)[:100]
        self.color.publish(truncated)
        T = np.eye(4)
        T[:3, 3] = (0.3, -0.2, 1.0)  # not the mount the sim bridge publishes on /tf_static
        from rclpy.time import Time

        ahead = Time(nanoseconds=now.nanoseconds + YEAR_NS, clock_type=now.clock_type)
        self.tf.publish(self._TFMessage(transforms=[
            matrix_to_transform_stamped(T, "base_link", camera_frame, now.to_msg()),
            matrix_to_transform_stamped(np.eye(4), "odom", "base_link", ahead.to_msg())]))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def _node_pids(output: str) -> dict[str, list[int]]:
    pids: dict[str, list[int]] = {name: [] for name in NODES}
    for name, pid in re.findall(r"started (\S+) \(pid (\d+)\)", output):
        pids.setdefault(name, []).append(int(pid))
    return pids


def run_soak(cfg: SoakConfig, log=print) -> dict[str, Any]:
    """Runs the soak; returns counts, the memory curves and the map across the restart (JSON-ready)."""
    work = Path(tempfile.mkdtemp(prefix="llm3d_soak_"))
    params = soak_params(cfg, work)
    cmd = [sys.executable, "-m", "llm3d_cli.main", "bringup", "--sim", "--params-file", str(params),
           "--device", cfg.device]
    bringup = ChildProcess(cmd, env=ros_environment(), name="bringup", max_lines=50_000, new_session=True)
    harness = _Harness(cfg.burst)
    duration = cfg.minutes * 60.0
    requests: list[dict] = []  # sent, done, ok, message
    rss: dict[str, list[tuple[float, float]]] = {name: [] for name in NODES}  # (s, GB)
    private: dict[str, list[tuple[float, float]]] = {name: [] for name in NODES}
    kill: dict[str, Any] = {}
    try:
        log("soak: waiting for the stack (model load, first map save)")
        deadline = time.monotonic() + 300.0
        while not (harness.status.get("llm3d_reasoner", {}).get("model", {}).get("state") == "ready"
                   and harness.status.get("llm3d_mapper", {}).get("saves", {}).get("count")):
            if bringup.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the stack did not come up (bringup exit {bringup.proc.poll()}):\n"
                                   + "\n".join(list(bringup.lines)[-40:]))
            harness.spin(0.2)
        harness.spin(1.0)  # the ask clients' discovery settles (llm3d_ros.qos.DISCOVERY_SETTLE_S)
        camera_frame = "camera_color_optical_frame"
        t0 = time.monotonic()
        next_sample = next_burst = next_bad = t0
        kill_time = t0 + cfg.kill_at * duration if cfg.kill_node else None
        while time.monotonic() - t0 < duration:
            now = time.monotonic()
            if now >= next_sample:
                next_sample += cfg.sample_period_s
                pids = _node_pids(bringup.output)
                for name in NODES:
                    gb = process_memory_gb(pids[name][-1]) if pids.get(name) else {}
                    if "rss_gb" in gb and "private_gb" in gb:
                        rss[name].append((round(now - t0, 2), gb["rss_gb"]))
                        private[name].append((round(now - t0, 2), gb["private_gb"]))
                log(f"soak: {now - t0:5.0f} s  RSS " + "  ".join(f"{n.split('_')[-1]} {rss[n][-1][1]:.2f} GB"
                                                                for n in NODES if rss[n]) +
                    f"  requests {len(requests)}")
            if cfg.burst and now >= next_burst:
                next_burst += cfg.burst_period_s
                for i, client in enumerate(harness.clients):
                    entry = {"sent": time.monotonic(), "done": None, "ok": None, "message": ""}
                    future = client.call_async(harness.Ask.Request(question=QUESTIONS[i % len(QUESTIONS)]))
                    future.add_done_callback(lambda f, e=entry: _finish(e, f))
                    requests.append(entry)
            if now >= next_bad:
                next_bad += cfg.bad_period_s
                harness.publish_bad_input(camera_frame)
            if kill_time is not None and now >= kill_time and not kill:
                pid = _node_pids(bringup.output)[cfg.kill_node][-1]
                status = harness.status.get("llm3d_mapper", {})
                kill = {"node": cfg.kill_node, "pid": pid, "at_s": round(now - t0, 1),
                        "map_frames_saved_before": _saved_frames(work / "map"),
                        "map_frames_live_before": status.get("map", {}).get("frames")}
                os.kill(pid, signal.SIGKILL)
                log(f"soak: kill -9 {cfg.kill_node} (pid {pid}) at {now - t0:.0f} s")
            if kill and "map_frames_after_restart" not in kill:
                status = harness.status.get("llm3d_mapper", {})
                if status.get("saves", {}).get("resumed") and _node_pids(bringup.output)["llm3d_mapper"][-1] != kill["pid"]:
                    kill["map_frames_after_restart"] = status["map"]["frames"]
                    kill["restart_s"] = round(time.monotonic() - t0 - kill["at_s"], 1)
            harness.spin(0.05)
        log("soak: waiting for the last replies")
        end = time.monotonic() + cfg.reply_timeout_s
        while any(r["done"] is None and time.monotonic() - r["sent"] < cfg.reply_timeout_s for r in requests) \
                and time.monotonic() < end:
            harness.spin(0.2)
        mapper_status = harness.status.get("llm3d_mapper", {})
        bridge_status = harness.status.get("llm3d_sim_bridge", {})
    finally:
        harness.close()
        rc = bringup.stop(60.0)
    output = bringup.output
    exits = re.findall(r"(\S+) exited unexpectedly with code (-?\d+)", output)
    injected = [e for e in exits if kill and e[0] == kill["node"] and int(e[1]) == -signal.SIGKILL]
    answered = [r for r in requests if r["ok"]]
    refused = [r for r in requests if r["ok"] is False]
    lost = [r for r in requests if r["ok"] is None]
    replies = [r["done"] - r["sent"] for r in requests if r["done"] is not None]
    return {
        "config": {"minutes": cfg.minutes, "rate_hz": cfg.rate_hz, "burst": cfg.burst,
                   "burst_period_s": cfg.burst_period_s, "bad_period_s": cfg.bad_period_s, "kill_node": cfg.kill_node,
                   "device": cfg.device},
        "requests": {"sent": len(requests), "answered": len(answered), "refused": len(refused), "lost": len(lost),
                     "max_reply_s": round(max(replies), 2) if replies else None,
                     "example_refusal": refused[0]["message"] if refused else ""},
        "frames": {"published": bridge_status.get("frames"), "fused_by_last_mapper": mapper_status.get("fused"),
                   "still_by_last_mapper": (mapper_status.get("skipped") or {}).get("still"),
                   "dropped_by_last_mapper": (mapper_status.get("dropped") or {}),
                   "errors_by_last_mapper": mapper_status.get("errors"), "tf_by_last_mapper": mapper_status.get("tf")},
        "rss_gb": rss, "private_gb": private,
        "peak_rss_gb": {name: max((v for _, v in curve), default=None) for name, curve in rss.items()},
        "final_rss_gb": {name: curve[-1][1] if curve else None for name, curve in rss.items()},
        "peak_private_gb": {name: max((v for _, v in curve), default=None) for name, curve in private.items()},
        "crashes": [f"{name} exit {code}" for name, code in exits if (name, code) not in injected],
        "kill": kill, "bringup_exit": rc, "map_frames_end": _saved_frames(work / "map"), "work_dir": str(work),
    }


def _finish(entry: dict, future) -> None:
    entry["done"] = time.monotonic()
    try:
        response = future.result()
        entry["ok"], entry["message"] = bool(response.success), response.message
    except Exception as err:  # a cancelled future: no reply
        entry["done"], entry["message"] = None, repr(err)


def _saved_frames(map_dir: Path) -> int | None:
    try:
        return int(json.loads((map_dir / "map.json").read_text())["frames"])
    except (OSError, ValueError, KeyError):
        return None


def soak_rows(result: dict[str, Any]) -> list[list[str]]:
    """(measure, result, target, meets) rows of the soak table."""
    req, kill = result["requests"], result["kill"]
    rows = [["requests sent / answered / refused (busy)", f"{req['sent']} / {req['answered']} / {req['refused']}",
             "every one replied", "yes" if req["lost"] == 0 else "no"],
            ["requests lost (no reply)", str(req["lost"]), "0", "yes" if req["lost"] == 0 else "no"],
            ["longest reply", f"{req['max_reply_s']} s", "bounded (request_timeout_s 120 s)",
             "yes" if (req["max_reply_s"] or 0) <= 125 else "no"],
            ["crashes (besides the injected kill)", str(len(result["crashes"])) + (f": {result['crashes']}"
                                                                                   if result["crashes"] else ""),
             "0", "yes" if not result["crashes"] else "no"]]
    if kill:
        before, after = kill.get("map_frames_saved_before"), kill.get("map_frames_after_restart")
        rows.append([f"map frames: saved before kill -9 of {kill['node']} / resumed after",
                     f"{before} / {after} (back in {kill.get('restart_s')} s)", "map kept",
                     "yes" if after is not None and before is not None and after >= before else "no"])
    frames = result["frames"]
    rows.append(["frames published (sim) / fused / skipped, camera still (last mapper process)",
                 f"{frames['published']} / {frames['fused_by_last_mapper']} / {frames.get('still_by_last_mapper')}",
                 "newest-wins: drops counted", "-"])
    for name in ("llm3d_mapper", "llm3d_reasoner", "llm3d_sim_bridge"):
        peak, final = result["peak_rss_gb"].get(name), result["final_rss_gb"].get(name)
        target = RSS_TARGET_GB if name != "llm3d_sim_bridge" else None
        rows.append([f"{name} RSS peak / at the end (private peak)",
                     f"{peak} / {final} GB ({result['peak_private_gb'].get(name)} GB)",
                     f"<= {target} GB" if target else "-",
                     ("yes" if peak is not None and peak <= target else "no") if target else "-"])
    return rows


def plot_soak(result: dict[str, Any], path: Path) -> Path:
    """The nodes' resident memory over the run (and the injected kill) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for (name, curve), color in zip(result["rss_gb"].items(), ("tab:green", "tab:blue", "tab:orange")):
        if curve:
            ax.plot([t / 60 for t, _ in curve], [v for _, v in curve], color=color, label=f"{name} RSS")
        private = result["private_gb"].get(name) or []
        if private:
            ax.plot([t / 60 for t, _ in private], [v for _, v in private], color=color, linestyle="--",
                    linewidth=1, label=f"{name} private")
    ax.axhline(RSS_TARGET_GB, color="grey", linestyle="--", linewidth=1, label=f"target {RSS_TARGET_GB} GB")
    if result["kill"]:
        ax.axvline(result["kill"]["at_s"] / 60, color="red", linestyle=":", label=f"kill -9 {result['kill']['node']}")
    ax.set_xlabel("minutes")
    ax.set_ylabel("resident memory (GB)")
    cfg = result["config"]
    ax.set_title(f"llm3d bench soak: {cfg['minutes']:g} min, sim at {cfg['rate_hz']:g} Hz, "
                 f"{cfg['burst']} asks every {cfg['burst_period_s']:g} s")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
