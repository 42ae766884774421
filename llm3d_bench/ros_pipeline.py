"""`llm3d bench ros`: the ROS 2 layer measured across processes, on real frames.

1. DDS reference: a 640x480 rgb8 Image (a real frame) sent to an echo process and back
   (`python -m llm3d_bench.ros_harness echo`), one at a time, best effort like a camera stream. Every
   number below pays this transport at least once; it is what they compete with.
2. llm3d_mapper under a 30 Hz camera. The mapper runs in its own process, started as `llm3d
   bringup` starts it (same module, node name and YAML parameters, `llm3d_ros.node_set`). This
   process publishes real 7-Scenes frames (rgb8 colour, 16UC1 depth, CameraInfo, TF; 640x480 and
   320x240, the latter every 2nd pixel) at `rate_hz` for `seconds`, each stamped with its
   publication time. From the differences of the node's ~/status counters over the run: frames
   received, fused and dropped (stale in the newest-wins queue, unpaired, lost in transport), the
   dropped share (1 - fused / published), fused frames/s and the largest queue seen.
   Camera-to-map latency = the node's `timing.last_latency_s`: the node's clock when the frame's
   `integrate()` returned minus the image's header stamp (its publication time here; both clocks
   are this machine's). It covers transport, colour/depth pairing, waiting in the queue, the TF
   lookup, conversion and fusion, not the throttled map_cloud publication (`cloud_period_s`).
   Sampled: each status (every `status_period_s`, 0.05 s here) whose `fused` counter moved gives
   the latency of the last frame fused. "Keeps up by dropping, never by queueing": the queue never
   holds more than `queue_size`, and the median latency of the last third of the run is at most
   LATENCY_GROWTH_MAX times that of the first third (a queue that grows makes latency grow with it).
   Also the node's peak resident memory (VmHWM of its process).
3. Service round trips across processes (std_srvs/Trigger on the mapper): `~/save_map` on an empty
   map, which answers "nothing to save" at once, so it times the service path itself (DDS both
   ways, the node's executor); `~/save_map` with the streamed map (writes it to disk) and
   `~/reset_map` (reallocates the map): what a caller waits for. And, when there is a checkpoint,
   the reasoner's `ask` through `Llm3dClient`, the reasoner in its own process on the map the mapper
   saved.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from llm3d_bench.ros_harness import (MAPPER_NODE, REASONER_NODE, BenchNode, ChildProcess, RosBenchError, dds_reference,
                                     node_process, stats_ms)
from llm3d_core.geometry import RGBDFrame
from llm3d_ros.env import ros_environment

# The mapper's per-frame error kinds (llm3d_ros.nodes.mapper_node.ERROR_KINDS, not imported: it loads
# torch). bad_camera_info counts CameraInfo messages, no_valid_depth frames that were also fused, and
# save_failed saves: none of them is a frame that left the queue unfused.
FRAME_ERRORS = ("bad_image", "no_camera_info", "no_frame_id", "no_transform", "bad_frame", "fusion_failed")
LATENCY_GROWTH_MAX = 1.5  # last-third / first-third median latency; a growing queue exceeds it within seconds
TRIGGER_TARGET_MS = 10.0  # p95 of a Trigger round trip: a few DDS round trips plus a trivial callback
ASK_QUESTION = "What is in the room?"
ROS_HEADER = ("measure", "result", "target", "meets", "notes")


@dataclass
class RosBenchConfig:
    """Settings of `llm3d bench ros`.

    Attributes:
        frames_dir: posed RGB-D frames (7-Scenes layout, 640x480).
        params_file: the nodes' YAML parameter file (launch/llm3d.yaml or --config). The bench
            overrides map_path / map_dir (a temporary folder), status_period_s, autosave and resume.
        seconds: how long the camera streams, per image size.
        rate_hz: camera rate.
        widths: image widths streamed; each divides the frames' width (640 native, 320 = every 2nd pixel).
        unique_frames: distinct frames loaded, spread over the sequence and cycled (all 250 at 640x480
            would take seconds to decode and ~380 MB).
        status_period_s: the mapper's status period during the bench, i.e. the latency sampling interval.
        trigger_calls: timed ~/save_map calls on an empty map (the service path without work).
        reset_calls: timed ~/reset_map calls.
        save_calls: timed ~/save_map calls with the map (each writes the whole map).
        pings: timed DDS image round trips.
        asks: timed reasoner `ask` calls (only with a checkpoint).
        checkpoint: reasoner checkpoint folder; None: `ask` is not measured (said so in the output).
        device: forwarded to the nodes as `llm3d bringup --device` does ("" = the YAML's).
        start_timeout_s: how long a node may take to come up (torch, encoders, the model).
        drain_timeout_s: after streaming, how long the mapper may take to finish its queue.
    """

    frames_dir: Path
    params_file: Path
    seconds: float = 10.0
    rate_hz: float = 30.0
    widths: tuple[int, ...] = (640, 320)
    unique_frames: int = 60
    status_period_s: float = 0.05
    trigger_calls: int = 50
    reset_calls: int = 10
    save_calls: int = 3
    pings: int = 100
    asks: int = 10
    checkpoint: Path | None = None
    device: str = ""
    start_timeout_s: float = 300.0
    drain_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        for name in ("seconds", "rate_hz", "status_period_s", "start_timeout_s", "drain_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RosBenchConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("unique_frames", "pings"):
            if getattr(self, name) < 1:
                raise ValueError(f"RosBenchConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("trigger_calls", "reset_calls", "save_calls", "asks"):
            if getattr(self, name) < 0:
                raise ValueError(f"RosBenchConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.widths or any(w < 8 for w in self.widths):
            raise ValueError(f"RosBenchConfig.widths must be image widths >= 8, got {self.widths!r}")

    @classmethod
    def quick(cls, frames_dir: Path, params_file: Path, **overrides: Any) -> "RosBenchConfig":
        """A smoke run of a few seconds on 320x240 images (CI, tests)."""
        small = dict(seconds=3.0, widths=(320,), unique_frames=15, trigger_calls=20, reset_calls=3, save_calls=2,
                     pings=30, asks=3)
        return cls(frames_dir=frames_dir, params_file=params_file, **{**small, **overrides})



def write_bench_params(source: Path, target: Path, map_dir: Path, cfg: RosBenchConfig) -> Path:
    """`source` with the overrides the bench needs; every other parameter is the user's."""
    from llm3d_core.config import load_yaml

    data = load_yaml(source) or {}
    mapper = data.setdefault(MAPPER_NODE, {}).setdefault("ros__parameters", {})
    # Status often (the latency sampling interval); no autosave or resume, whose disk writes and
    # old maps would blur the timings; every frame fused (the stream cycles a few frames, whose
    # repeats a still-camera skip would take for a parked robot's).
    mapper.update(map_path=str(map_dir), status_period_s=cfg.status_period_s, autosave_period_s=0.0, resume=False,
                  still_fuse_period_s=0.0)
    if cfg.checkpoint is not None:
        reasoner = data.setdefault(REASONER_NODE, {}).setdefault("ros__parameters", {})
        reasoner.update(map_dir=str(map_dir), checkpoint=str(cfg.checkpoint))
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


# ---------------------------------------------------------------------------- frames
def load_frames(frames_dir: Path, count: int) -> list[RGBDFrame]:
    """`count` frames spread over the sequence, so the map grows as under a moving camera."""
    from llm3d_core.data.frames import SevenScenesFrames

    source = SevenScenesFrames(frames_dir)
    step = max(1, len(source) // count)
    return [source[i] for i in range(0, len(source), step)][:count]


def subsampled(frame: RGBDFrame, factor: int) -> RGBDFrame:
    """Every factor-th pixel: a camera of 1/factor the resolution. New pixel u samples old pixel
    factor * u, so every intrinsic (fx, fy, cx, cy) divides by factor exactly."""
    if factor == 1:
        return frame
    K = np.asarray(frame.K, dtype=np.float64).copy()
    K[:2] /= factor
    return replace(frame, rgb=np.ascontiguousarray(frame.rgb[::factor, ::factor]),
                   depth=np.ascontiguousarray(frame.depth[::factor, ::factor]), K=K)



def _frame_errors(status: dict[str, Any]) -> int:
    return sum(status["errors"].get(kind, 0) for kind in FRAME_ERRORS)


def _settled(status: dict[str, Any]) -> bool:
    """Every paired frame has been fused, dropped as stale, skipped (still camera) or rejected: the worker is idle."""
    return bool(status) and status["queue"] == 0 and \
        status["paired"] == status["fused"] + status["dropped"]["stale"] + status["skipped"]["still"] + _frame_errors(status)


def _stream(bench: BenchNode, msgs: list[Any], seconds: float, rate_hz: float) -> tuple[int, float]:
    """Publishes msgs cycled at rate_hz for `seconds`; (frames published, seconds taken)."""
    period = 1.0 / rate_hz
    start = next_tick = time.monotonic()
    published = 0
    while (now := time.monotonic()) - start < seconds:
        if now < next_tick:
            bench.executor.spin_once(timeout_sec=next_tick - now)
            continue
        bench.feed.publish(msgs[published % len(msgs)], bench.now_ns())
        published += 1
        # A publisher that fell behind skips ahead: a camera does not burst to catch up.
        next_tick = max(next_tick + period, now)
    return published, time.monotonic() - start


def mapper_under_camera(bench: BenchNode, msgs: list[Any], cfg: RosBenchConfig, queue_size: int) -> dict[str, Any]:
    """One image size: warm-up, reset, stream at rate_hz, drain; counters as differences over the stream."""
    # Warm-up, not timed: the first frames pay lazy start-up (encoder weights, allocator growth).
    before = bench.status["fused"]
    deadline = time.monotonic() + cfg.start_timeout_s
    while bench.status["fused"] < before + 2:
        for child in bench.children:
            child.check()
        if time.monotonic() > deadline:
            raise RosBenchError(f"{MAPPER_NODE} fused no frame within {cfg.start_timeout_s:.0f} s; status "
                                f"{bench.status}")
        _stream(bench, msgs, 1.0, cfg.rate_hz)
    bench.spin_until(lambda: _settled(bench.status), cfg.drain_timeout_s, "the mapper to finish the warm-up frames")
    reset_ns = bench.now_ns()
    response, _ = bench.call(bench.reset)
    if not response.success:
        raise RosBenchError(f"~/reset_map failed: {response.message}")
    bench.spin_until(lambda: bench.status["stamp"] * 1e9 > reset_ns and _settled(bench.status), cfg.drain_timeout_s,
                     "a status after the reset")
    s0 = bench.status
    t_start = time.monotonic()
    samples: list[tuple[float, float]] = []  # (seconds since the stream started, latency)
    seen = {"fused": s0["fused"], "max_queue": 0}

    def on_status(status: dict[str, Any]) -> None:
        seen["max_queue"] = max(seen["max_queue"], status["queue"])
        if status["fused"] > seen["fused"]:
            seen["fused"] = status["fused"]
            samples.append((time.monotonic() - t_start, status["timing"]["last_latency_s"]))

    bench.on_status = on_status
    try:
        published, took = _stream(bench, msgs, cfg.seconds, cfg.rate_hz)
        end_ns = bench.now_ns()
        drained = True
        try:
            bench.spin_until(lambda: bench.status["stamp"] * 1e9 > end_ns and _settled(bench.status),
                             cfg.drain_timeout_s, "the mapper to drain its queue")
        except RosBenchError:
            drained = False  # reported; a mapper that never catches up is a result, not a crash
    finally:
        bench.on_status = None
    s1 = bench.status
    received = {k: s1["received"][k] - s0["received"][k] for k in s0["received"]}
    fused = s1["fused"] - s0["fused"]
    errors = {k: s1["errors"][k] - s0["errors"][k] for k in s0["errors"] if s1["errors"][k] > s0["errors"][k]}
    latencies = [lat for _, lat in samples]
    thirds = [[lat for t, lat in samples if lo <= t / took < hi] for lo, hi in ((0, 1 / 3), (2 / 3, 99))]
    growth = (float(np.median(thirds[1]) / np.median(thirds[0]))
              if all(thirds) and np.median(thirds[0]) > 0 else None)
    h, w = msgs[0].depth.height, msgs[0].depth.width
    return {
        "width": w, "height": h, "seconds": round(took, 3), "published": published,
        "publish_hz": round(published / took, 2), "received": received,
        "paired": s1["paired"] - s0["paired"], "fused": fused,
        "dropped": {"stale": s1["dropped"]["stale"] - s0["dropped"]["stale"],
                    "unpaired": s1["dropped"]["unpaired"] - s0["dropped"]["unpaired"],
                    "transport_color": published - received["color"], "transport_depth": published - received["depth"]},
        "errors": errors, "dropped_share": round(1.0 - fused / published, 4) if published else None,
        "fused_per_s": round(fused / took, 2), "max_queue": seen["max_queue"], "queue_size": queue_size,
        "latency_ms": stats_ms(latencies), "latency_growth": None if growth is None else round(growth, 3),
        # The status has the running mean since the node started: take this stream's share of the total.
        "mean_fuse_ms": round((s1["timing"]["mean_fuse_s"] * s1["fused"] - s0["timing"]["mean_fuse_s"] * s0["fused"])
                              / fused * 1e3, 1) if fused else None, "drained": drained,
    }


def time_trigger(bench: BenchNode, client: Any, calls: int, what: str) -> dict[str, Any]:
    """Round trips of `calls` Trigger requests, after one untimed call (the first sets up the connection)."""
    bench.call(client)
    results = [bench.call(client) for _ in range(calls)]
    return {"service": client.srv_name, "what": what, "calls": calls,
            "succeeded": sum(bool(r.success) for r, _ in results), "message": results[-1][0].message if results else "",
            "round_trip_ms": stats_ms([s for _, s in results])}


def time_asks(bench: BenchNode, cfg: RosBenchConfig, params: Path, env: dict[str, str]) -> dict[str, Any]:
    """`ask` round trips through Llm3dClient, the reasoner in its own process on the saved map."""
    from llm3d_ros.client import Llm3dClient

    reasoner = node_process(REASONER_NODE, params, cfg.device, env)
    bench.children.append(reasoner)
    try:
        with Llm3dClient(server_timeout_s=cfg.start_timeout_s, timeout_s=cfg.start_timeout_s) as client:
            # Untimed: until the model and the map are loaded, asks answer "still loading" / "no map".
            t0 = time.monotonic()
            while not (reply := client.ask(ASK_QUESTION)).success:
                reasoner.check()
                if time.monotonic() - t0 > cfg.start_timeout_s:
                    raise RosBenchError(f"the reasoner did not answer within {cfg.start_timeout_s:.0f} s: "
                                        f"{reply.message}")
                time.sleep(0.5)  # pacing retries while the model loads in the other process
            load_s = time.monotonic() - t0
            replies = [client.ask(ASK_QUESTION) for _ in range(cfg.asks)]
    finally:
        bench.children.remove(reasoner)
        memory = reasoner.memory_gb()
        reasoner.stop()
    ok = [r for r in replies if r.success]
    return {"measured": True, "checkpoint": str(cfg.checkpoint), "question": ASK_QUESTION, "calls": cfg.asks,
            "failed": cfg.asks - len(ok), "answer": ok[-1].answer if ok else "", "ready_after_s": round(load_s, 2),
            "round_trip_ms": stats_ms([r.seconds for r in ok]), "node_memory": memory}


def run_ros_bench(cfg: RosBenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs the three measurements (module docstring); the result is JSON-ready."""
    from llm3d_core.config import load_yaml
    from llm3d_ros.camera_feed import frame_messages

    frames = load_frames(cfg.frames_dir, cfg.unique_frames)
    native = frames[0].depth.shape[1]
    bad = [w for w in cfg.widths if native % w]
    if bad:
        raise ValueError(f"widths {bad} do not divide the frames' width {native}")
    mapper_params = (load_yaml(cfg.params_file) or {}).get(MAPPER_NODE, {}).get("ros__parameters", {})
    queue_size = int(mapper_params.get("queue_size", 1))
    env = ros_environment()
    children: list[ChildProcess] = []
    result: dict[str, Any] = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(cfg).items()},
                              "ros_domain_id": env.get("ROS_DOMAIN_ID", "0")}
    with tempfile.TemporaryDirectory(prefix="llm3d_bench_ros_") as tmp:
        map_dir = Path(tmp) / "map"
        params = write_bench_params(cfg.params_file, Path(tmp) / "params.yaml", map_dir, cfg)
        bench = BenchNode(children)
        mapper: ChildProcess | None = None
        try:
            log(f"DDS reference: {cfg.pings} round trips of a {native}x{frames[0].depth.shape[0]} image")
            result["dds"] = dds_reference(bench, frames[0].rgb, cfg.pings, env)
            log(f"starting {MAPPER_NODE} with {cfg.params_file}")
            t0 = time.monotonic()
            mapper = node_process(MAPPER_NODE, params, cfg.device, env)
            children.append(mapper)
            bench.spin_until(lambda: bench.feed.subscribed() and bench.status and bench.reset.service_is_ready(),
                             cfg.start_timeout_s, f"{MAPPER_NODE} to come up")
            result["mapper_start_s"] = round(time.monotonic() - t0, 2)
            result["streams"] = []
            for width in cfg.widths:
                msgs = [frame_messages(subsampled(f, native // width)) for f in frames]
                log(f"{MAPPER_NODE}: {width}x{msgs[0].depth.height} at {cfg.rate_hz:g} Hz for {cfg.seconds:g} s")
                result["streams"].append(mapper_under_camera(bench, msgs, cfg, queue_size))
            log("service round trips")
            result["save_map"] = time_trigger(bench, bench.save, cfg.save_calls, "writes the map")
            if cfg.checkpoint is not None and cfg.asks:
                log(f"{REASONER_NODE}: ask x{cfg.asks} with {cfg.checkpoint}")
                result["ask"] = time_asks(bench, cfg, params, env)
            else:
                result["ask"] = {"measured": False,
                                 "note": "no checkpoint (none shipped in checkpoints/, none given with --ckpt)"
                                 if cfg.checkpoint is None else "asks: 0"}
            result["reset_map"] = time_trigger(bench, bench.reset, cfg.reset_calls, "reallocates the map")
            # After the reset nothing is fused, so save_map answers "nothing to save" without touching the map.
            result["trigger"] = time_trigger(bench, bench.save, cfg.trigger_calls, "empty map: no work")
            result["mapper_memory"] = mapper.memory_gb()
        finally:
            bench.close()
            for child in reversed(children):
                child.stop()
    return result


# ---------------------------------------------------------------------------- table
def _ms(stats: dict[str, Any]) -> str:
    return f"p50 {stats['p50']:.3g} ms, p95 {stats['p95']:.3g} ms" if stats.get("samples") else "no samples"


def ros_rows(result: dict[str, Any], peak_target_gb: float) -> list[list[object]]:
    """Rows of ROS_HEADER: measure, result, target, whether it is met, notes."""
    dds = result["dds"]
    rows: list[list[object]] = [[
        f"DDS image round trip {dds['width']}x{dds['height']} rgb8, 2 processes", _ms(dds["round_trip_ms"]),
        "reference", "–", f"{dds['lost']}/{dds['sent']} lost (best effort), {dds['bytes'] / 1e6:.2f} MB each way"]]
    for s in result["streams"]:
        size = f"{s['width']}x{s['height']}"
        d = s["dropped"]
        lat = s["latency_ms"]
        rows.append([f"mapper {size} @ {s['publish_hz']:.3g} Hz: fused frames/s", f"{s['fused_per_s']:.3g}",
                     "as fusion allows", "–", f"{s['fused']} of {s['published']} published; fusion {s['mean_fuse_ms']} ms/frame"])
        transport = max(d["transport_color"], d["transport_depth"])
        rows.append([f"mapper {size}: dropped", f"{100 * s['dropped_share']:.1f} %", "drops, never queues: queue <= "
                     f"{s['queue_size']}", "yes" if s["max_queue"] <= s["queue_size"] and s["drained"] else "no",
                     f"stale {d['stale']}, unpaired {d['unpaired']}, lost in transport {transport}, errors "
                     f"{sum(s['errors'].values())}; max queue {s['max_queue']}"
                     + ("" if s["drained"] else "; did not drain")])
        growth = s["latency_growth"]
        rows.append([f"mapper {size}: camera-to-map latency", _ms(lat), f"bounded: growth <= {LATENCY_GROWTH_MAX}",
                     "–" if growth is None else ("yes" if growth <= LATENCY_GROWTH_MAX else "no"),
                     f"{lat.get('samples', 0)} samples, max {lat.get('max', 0):.3g} ms; growth (last/first third) "
                     + ("n/a" if growth is None else f"{growth:.2f}")])
    memory = result.get("mapper_memory", {})
    if "peak_gb" in memory:
        rows.append(["mapper node peak memory", f"{memory['peak_gb']:.2f} GB", f"< {peak_target_gb} GB",
                     "yes" if memory["peak_gb"] < peak_target_gb else "no",
                     f"VmHWM of the node's process (mapper, rclpy, DDS buffers); now {memory.get('rss_gb', 0):.2f} GB"])
    for key in ("trigger", "save_map", "reset_map"):
        t = result[key]
        stats = t["round_trip_ms"]
        if key == "trigger":
            target = f"p95 < {TRIGGER_TARGET_MS:g} ms"
            meets = "yes" if stats.get("samples") and stats["p95"] < TRIGGER_TARGET_MS else "no"
        else:
            target, meets = "as the work allows", "–"
        rows.append([f"service {t['service']} (Trigger), {t['what']}", _ms(stats), target, meets,
                     f"{t['calls']} calls, {t['succeeded']} answered success=true"])
    ask = result["ask"]
    if ask["measured"]:
        rows.append(["service ask (reasoner, Llm3dClient)", _ms(ask["round_trip_ms"]), "as the model allows", "–",
                     f"{ask['calls']} calls, {ask['failed']} failed; model ready after {ask['ready_after_s']:.3g} s"])
    else:
        rows.append(["service ask (reasoner)", "not measured", "–", "–", ask["note"]])
    return rows
