"""The reasoner core without ROS: goal selection on an occupancy grid, and dialog, grounding,
planning and navigation goals with a tiny random model on a small simulator map.

The helpers here (a tiny LLM saved as a Hugging Face folder, a small map of a sim scene) are
shared with tests/ros/test_reasoner_node.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from llm3d_core.mapping.goals import GoalConfig, GoalError, NavigationMap, box_footprint_distance
from llm3d_core.mapping.occupancy import FREE, OCCUPIED, UNKNOWN, OccupancyGrid
from llm3d_core.reasoner import Reasoner, ReasonerConfig, ReasonerError, saved_map_version

SIM_SCENE_SEED = 11000  # the sim bridge's default scene, so a full-chain test sees the same room


# ---------------------------------------------------------------------- shared helpers
def save_tiny_llm(folder: Path) -> Path:
    """A 2-layer random Llama + byte-level BPE tokenizer as an HF folder (an `llm_path`); seconds to load."""
    from tests.core.test_model import tiny_llm, tiny_tokenizer

    tok = tiny_tokenizer()
    tiny_llm(len(tok)).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def tiny_model_config(llm_path: Path, **overrides):
    """The tiny model of tests/core/test_model.py, for maps with 16-d features."""
    from tests.core.test_model import tiny_config

    return tiny_config(**{"llm_path": str(llm_path), "max_new_tokens": 24, **overrides})


def train_tiny_checkpoint(folder: Path, llm_path: Path, map_dir: Path, steps: int = 60) -> Path:
    """A tiny model (LLM unfrozen) overfitted in ~1 s to answer a plan, a question and a dialog turn
    on the map at map_dir, saved as a checkpoint; a random model would often answer nothing."""
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.model.scene import scene_from_mapper
    from llm3d_core.training.train import TrainConfig, make_optimizer, train_step
    from llm3d_core.reasoner import load_model

    model = load_model(None, tiny_model_config(llm_path, freeze_llm=False), "cpu")
    scene = scene_from_mapper(FeatureFusionMapper.load(map_dir, device="cpu"), model.config.num_points,
                              model.config.seed)
    samples = [model.make_sample("plan", "make coffee", target=TRAINED_PLAN),
               model.make_sample("qa", "What is in the room?", target=TRAINED_ANSWER),
               model.make_sample("dialog", "and the table?", [("What is in the room?", TRAINED_ANSWER)],
                                 target="brown")]
    batch = (model.collate_scenes([scene] * len(samples)), samples)
    model.train()
    opt, sched = make_optimizer(model, TrainConfig(data="x", out="y", lr=1e-2, warmup_steps=0, max_steps=steps))
    for _ in range(steps):
        train_step(model, [batch], opt, sched)
    model.eval()
    return model.save_pretrained(folder)


TRAINED_PLAN = "1. go to the counter\n2. pick up the mug"
TRAINED_ANSWER = "a red chair"


def build_sim_map(out_dir: Path, seed: int = SIM_SCENE_SEED) -> Path:
    """A small feature map of a sim scene (96x72 frames, 16-d features, no TSDF), under a second."""
    from llm3d_core.encoders import EncoderConfig
    from llm3d_core.mapping.mapper import MapperConfig
    from sim.config import SimConfig
    from sim.datagen.maps import build_scene_map, map_sim_config
    from sim.scenes import generate_scene

    cfg = map_sim_config(SimConfig(), width=96, height=72, max_steps=40)
    mapper_cfg = MapperConfig(device="cpu", sample_stride=2, use_tsdf=False, objects_every=0,
                              encoder=EncoderConfig(feature_dim=16, text_aligned=False))
    build_scene_map(generate_scene(seed), out_dir, frames_every=2, sim_config=cfg, mapper_config=mapper_cfg)
    return out_dir


# ---------------------------------------------------------------------- goals (pure numpy)
def _room(cells: int = 60, cell: float = 0.05) -> OccupancyGrid:
    """A 3 m x 3 m free floor with a 0.5 m obstacle block in the middle and an unknown strip at the top."""
    data = np.full((cells, cells), FREE, np.int8)
    data[25:35, 25:35] = OCCUPIED
    data[55:, :] = UNKNOWN
    return OccupancyGrid(data, np.zeros(2), cell)


def test_goal_faces_the_target_from_free_space_at_the_standoff():
    nav = NavigationMap(_room(), GoalConfig(standoff=0.5, floor_fill=0.0))
    box = np.array([1.25, 1.25, 0.0, 1.75, 1.75, 0.8])  # the obstacle block
    goal = nav.choose_goal(box, robot_xy=np.array([0.3, 0.3]))
    assert goal.target_distance == pytest.approx(0.5, abs=0.05)
    assert nav.is_free(goal.x, goal.y)
    centre = np.array([1.5, 1.5])
    to_centre = math.atan2(centre[1] - goal.y, centre[0] - goal.x)
    assert abs(math.remainder(goal.yaw - to_centre, 2 * math.pi)) < 1e-6
    assert goal.x < 1.5 and goal.y < 1.5  # the near side of the target, seen from the robot


def test_goal_validation_and_limits():
    nav = NavigationMap(_room(), GoalConfig(robot_radius=0.2, floor_fill=0.0))
    nav.validate(0.5, 0.5, 0.0)
    with pytest.raises(GoalError, match="not finite"):
        nav.validate(float("nan"), 0.5, 0.0)
    with pytest.raises(GoalError, match="outside the mapped area"):
        nav.validate(10.0, 0.5, 0.0)
    with pytest.raises(GoalError, match="not in observed free space"):
        nav.validate(1.5, 1.5, 0.0)  # inside the obstacle
    with pytest.raises(GoalError, match="not in observed free space"):
        nav.validate(1.14, 1.5, 0.0)  # free cell, but within the robot radius of the obstacle
    with pytest.raises(GoalError, match="not in observed free space"):
        nav.validate(1.0, 2.9, 0.0)  # never observed
    box = np.array([1.25, 1.25, 0.0, 1.75, 1.75, 0.8])
    with pytest.raises(GoalError, match="no reachable free floor within 0.10 m"):
        nav.choose_goal(box, max_distance=0.1)  # the inflated obstacle keeps goals >= 0.2 m away


def test_reachability_starts_at_the_robots_component():
    data = np.full((20, 40), FREE, np.int8)
    data[:, 19:21] = OCCUPIED  # a wall splits the room in two
    nav = NavigationMap(OccupancyGrid(data, np.zeros(2), 0.05), GoalConfig(robot_radius=0.05, floor_fill=0.0))
    box = np.array([1.5, 0.4, 0.0, 1.7, 0.6, 0.5])  # in the right half
    left = nav.choose_goal(box, robot_xy=np.array([0.2, 0.5]))
    assert left.x < 0.95  # the robot cannot pass the wall: the goal stays on its side
    right = nav.choose_goal(box, robot_xy=np.array([1.9, 0.5]))
    assert right.x > 1.05 and right.target_distance == pytest.approx(0.5, abs=0.05)
    assert box_footprint_distance(np.array([[1.6, 0.5], [1.0, 0.5]]), box).tolist() == pytest.approx([0.0, 0.5])


def test_goal_config_validation_names_the_field():
    with pytest.raises(ValueError, match="robot_radius"):
        GoalConfig(robot_radius=0.0)
    with pytest.raises(ValueError, match="grounding"):
        ReasonerConfig(grounding="guess")


# ---------------------------------------------------------------------- reasoner on a real (small) sim map
@pytest.fixture(scope="module")
def sim_reasoner(tmp_path_factory):
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.reasoner import load_model

    root = tmp_path_factory.mktemp("reasoner")
    map_dir = build_sim_map(root / "map")
    ckpt = train_tiny_checkpoint(root / "ckpt", save_tiny_llm(root / "llm"), map_dir)
    model = load_model(ckpt, None, "cpu", {"device": "cpu"})
    reasoner = Reasoner(model, ReasonerConfig(max_sessions=2))
    with pytest.raises(ReasonerError, match="no map yet"):
        reasoner.ask("what is here?")
    version = saved_map_version(map_dir)
    assert version
    reasoner.set_map(FeatureFusionMapper.load(map_dir, device="cpu"), version)
    return reasoner


def test_dialog_sessions_keep_history_and_are_bounded(sim_reasoner):
    text, sid = sim_reasoner.ask("What is in the room?")
    assert text == TRAINED_ANSWER and sid
    _, same = sim_reasoner.ask("and next to it?", sid)
    assert same == sid and len(sim_reasoner._sessions[sid].history) == 2
    sim_reasoner.ask("one"), sim_reasoner.ask("two")  # max_sessions 2: the oldest (sid) is dropped
    with pytest.raises(ReasonerError, match="unknown or expired session"):
        sim_reasoner.ask("still there?", sid)
    for bad in ("", "   ", "x" * 5000):
        with pytest.raises(ReasonerError, match="empty|characters"):
            sim_reasoner.ask(bad)


def test_ground_plan_and_navigation_goal(sim_reasoner):
    results = sim_reasoner.ground("the table", 3)
    objects = {o.id: o for o in sim_reasoner.map.mapper.objects}
    assert 1 <= len(results) <= 3 and results[0].source == "model"  # no text features: the model decides
    for g in results:
        assert g.id in objects and np.allclose(g.box, np.concatenate([objects[g.id].box_min, objects[g.id].box_max]))
        assert 0.0 <= g.score <= 1.0
    assert sim_reasoner.plan("make coffee") == ["go to the counter", "pick up the mug"]
    target, goal = sim_reasoner.navigation_goal("go to the table", None, max_distance=0.75)
    assert target.id == sim_reasoner.ground("go to the table", 1)[0].id  # the goal serves what `ground` picks
    sim_reasoner.validate_goal(goal.x, goal.y, goal.yaw)
    assert goal.target_distance <= 0.75
    with pytest.raises(ReasonerError, match="outside the mapped area"):
        sim_reasoner.validate_goal(100.0, 0.0, 0.0)


def test_mask_head_box_source(tmp_path, sim_reasoner):
    """box_source 'mask': the model's box is the decoded mask's (over the map's denser sample), the
    leading result names the object it overlaps most; a checkpoint without a head is refused."""
    from llm3d_core.model.configuration_llm3d import MaskHeadConfig
    from llm3d_core.reasoner import load_model
    mapper = sim_reasoner.map.mapper
    with pytest.raises(ReasonerError, match="no mask head"):
        Reasoner(sim_reasoner.model, ReasonerConfig(box_source="mask")).set_map(mapper, "v1")
    with pytest.raises(ValueError, match="box_source"):
        ReasonerConfig(box_source="guess")
    llm = save_tiny_llm(tmp_path / "llm")
    head = MaskHeadConfig(num_queries=4, num_layers=1, d_model=16, num_heads=2, num_points=512)
    model = load_model(None, tiny_model_config(llm, grounding_head="mask", mask_head=head), "cpu")
    reasoner = Reasoner(model, ReasonerConfig(grounding="model", box_source="mask"))
    reasoner.set_map(mapper, "v1")
    assert reasoner.uses_mask_head
    dense = reasoner.map.dense_scene(512, model.config.seed)
    assert dense.points.shape[0] == 512 and reasoner.map.dense_scene(512) is dense  # built once per map version
    results = reasoner.ground("the table", 2)  # this seeded random head masks some points
    found = model.ground_mask(dense, "the table")
    assert results[0].source == "mask" and np.allclose(results[0].box, found.box)
    assert results[0].id in {o.id for o in mapper.objects}
    auto = Reasoner(sim_reasoner.model, ReasonerConfig(box_source="auto"))
    auto.set_map(mapper, "v1")
    assert not auto.uses_mask_head  # auto without a head: the location tokens


def test_a_colour_the_object_does_not_show_is_refused(sim_reasoner):
    """"the <colour> table" is refused when the table it would get shows none of that colour, for
    ground and navigation alike; the colour it does show is accepted; 0 turns the check off."""
    from llm3d_core.colors import COLOR_TERMS

    mapper = sim_reasoner.map.mapper
    top = sim_reasoner.ground("the table", 1)[0]
    shares = mapper.object_colors(next(o for o in mapper.objects if o.id == top.id))
    assert shares, "the sim map's objects have voxel colours"
    absent = next(c for c in COLOR_TERMS if shares.get(c, 0.0) == 0.0)
    shown = next(iter(shares))
    with pytest.raises(ReasonerError, match=f"nothing in the map matches 'the {absent} table'.*does not look {absent}"):
        sim_reasoner.ground(f"the {absent} table", 1)
    with pytest.raises(ReasonerError, match="does not look"):
        sim_reasoner.navigation_goal(f"go to the {absent} table", None, max_distance=0.75)
    assert sim_reasoner.ground(f"the {shown} table", 1)
    sim_reasoner.config.color_min_share = 0.0
    try:
        assert sim_reasoner.ground(f"the {absent} table", 1)
    finally:
        sim_reasoner.config.color_min_share = 0.1
    with pytest.raises(ValueError, match="color_min_share"):
        ReasonerConfig(color_min_share=2.0)
    for bad in (0.0, -1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="relation_near_m"):
            ReasonerConfig(relation_near_m=bad)
    for bad in (-1.0, float("nan"), float("inf"), "5"):
        with pytest.raises(ValueError, match="category_check_gap"):
            ReasonerConfig(category_check_gap=bad)
    for bad in ((1.0, 0.35), (0.0, 1.0), (0.35,), "0.35 1.0", (0.35, float("inf"))):
        with pytest.raises(ValueError, match="size_limits_m"):
            ReasonerConfig(size_limits_m=bad)
    assert ReasonerConfig(size_limits_m=[0.3, 1]).size_limits_m == (0.3, 1.0)  # a YAML list


def test_thread_contention_times_each_thread_count_idle_and_beside_busy_processes(sim_reasoner):
    import os
    import subprocess

    from llm3d_bench.reasoner import contention_rows, thread_contention

    import torch

    before = torch.get_num_threads()
    rows = thread_contention(sim_reasoner._oneshot_session(), ["the table", "the chair"], busy=1)
    cores = os.cpu_count() or 1
    assert [(r["threads"], r["busy_processes"]) for r in rows] == [(t, b) for b in (0, 1) for t in sorted({1, cores})]
    assert all(r["answers"] == 2 and 0 < r["p50_s"] <= r["p95_s"] for r in rows)
    assert torch.get_num_threads() == before  # the process's own setting is restored
    table = contention_rows({"thread_contention": rows})
    assert [row[-1] for row in table if row[0] == 1] == ["1.0x", "1.0x"]  # each setting against 1 thread
    # the busy neighbours are gone
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "while True: pass" not in ps
