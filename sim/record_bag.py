"""An exploration run in the simulator, recorded as a real ROS 2 bag (what the sim bridge would publish).

Per explored frame, stamped `start_time_s + i * frame_dt`: /tf map -> odom (the perfect
localiser's correction) and odom -> base_link, /odom, CameraInfo, colour, depth and, when
`instance_topic` is set, the simulator's instance ids. base_link -> optical frame goes once on
/tf_static. The TF tree is the one `llm3d_sim_bridge` publishes, so a bag from here and a bag
recorded from the live bridge read alike. The scene annotations (scene.json, scene.glb) are saved
inside the bag folder: rosbag2 readers ignore files that metadata.yaml does not list, and one
folder then holds everything `llm3d train --bags` needs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llm3d_core.bags.config import BagConfig
from llm3d_core.bags.convert import bag_size
from llm3d_core.bags.writer import BagWriter
from llm3d_core.geometry import RGBDFrame
from sim.config import SimConfig
from sim.scenes.scene import Scene

SCENE_FILE = "scene.json"  # annotations inside the bag folder (mesh: scene.glb next to it)


@dataclass
class RecordStats:
    scene_id: str
    seed: int | None
    frames: int
    steps: int
    coverage: float
    messages: dict[str, int]
    bytes: int
    seconds: float
    path: str
    annotations: str

    def to_dict(self) -> dict:
        import dataclasses

        return dataclasses.asdict(self)


def _planar_velocity(T_prev: np.ndarray, T_now: np.ndarray, dt: float) -> tuple[float, float]:
    """Body-frame forward speed and yaw rate between two base poses (what a wheel odometry reports)."""
    delta = np.linalg.inv(T_prev) @ T_now  # motion in the previous base frame
    return float(delta[0, 3] / dt), float(math.atan2(delta[1, 0], delta[0, 0]) / dt)


def record_sim_bag(scene: Scene | int | str | Path, out: str | Path, sim_config: SimConfig | None = None,
                   bag_config: BagConfig | None = None,
                   wrap: Callable[[Iterable, str, int], Iterable] = lambda items, desc, total: items,
                   on_frame: Callable[[RGBDFrame, int], None] | None = None) -> RecordStats:
    """Explores `scene` (a Scene, a seed or a scene file) and writes the run as a bag at `out`.

    `on_frame(frame, i)` sees each recorded frame (tests compare them with what the bag reads back).
    """
    from sim.explore import Explorer
    from sim.simulator import Simulator

    cfg = bag_config or BagConfig()
    t0 = time.perf_counter()
    out = Path(out)
    sim = Simulator(sim_config)
    try:
        loaded = sim.load(scene)
        agent, dt = sim.agent, sim.config.explore.frame_dt
        start_ns = int(round(cfg.start_time_s * 1e9))
        steps = iter(wrap(range(sim.config.explore.max_steps + 1), "recording", sim.config.explore.max_steps + 1))
        last_base: list[np.ndarray] = []
        with BagWriter(out, cfg) as writer:
            writer.write_transforms([(agent.T_base_camera, cfg.base_frame, cfg.optical_frame)], start_ns, static=True)

            def record(frame: RGBDFrame, i: int) -> None:
                stamp = start_ns + int(round(i * dt * 1e9))
                T_odom_base = agent.T_odom_base()
                v, w = _planar_velocity(last_base[-1], T_odom_base, dt) if last_base else (0.0, 0.0)
                last_base[:] = [T_odom_base]
                writer.write_transforms([(agent.T_world_odom(), cfg.map_frame, cfg.odom_frame),
                                         (T_odom_base, cfg.odom_frame, cfg.base_frame)], stamp)
                writer.write_odometry(T_odom_base, v, w, stamp)
                writer.write_frame(frame, stamp, pose_on_tf=False)
                next(steps, None)
                if on_frame is not None:
                    on_frame(frame, i)

            result = Explorer(sim, sim.config.explore).run(on_frame=record, keep_frames=False)
            counts = dict(writer.counts)
        js, _ = loaded.save(out, stem=Path(SCENE_FILE).stem)
    finally:
        sim.close()
    return RecordStats(loaded.scene_id, loaded.seed, result.steps + 1, result.steps, round(result.coverage, 4), counts,
                       bag_size(out), round(time.perf_counter() - t0, 2), str(out), str(js))
