"""Navigation episodes in habitat-lab's ObjectNav file shape (llm3d_bench.episodes): written, read back,
and read from a plain ObjectNav file; frames converted both ways."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from llm3d_bench.episodes import (EpisodeFileError, GoalObject, NavEpisode, from_habitat_position,
                                from_habitat_rotation, read_episodes, to_habitat_position, to_habitat_rotation,
                                write_episodes)


def _episodes() -> list[NavEpisode]:
    chair = GoalObject(3, "chair", [1.0, 2.0, 0.0, 1.5, 2.5, 0.9], [[0.4, 2.2]])
    other = GoalObject(7, "chair", [4.0, -1.0, 0.0, 4.5, -0.5, 0.9])
    return [
        NavEpisode("sim_011000-0", "sim_011000", 11000, (0.5, -1.25, 2.0), "Go to the chair next to the table.",
                   "relational_goal", "chair", [3], [chair, other], 3.7, 2.1),
        NavEpisode("sim_011000-1", "sim_011000", 11000, (-2.0, 0.5, -3.0), "Take me to the chair.", "object_goal",
                   "chair", [7], [chair, other], None, 4.0),
        NavEpisode("sim_011001-absent-0", "sim_011001", 11001, (1.0, 1.0, 0.0), "Go to the giraffe.", "absent/novel",
                   "none", []),
    ]


@pytest.mark.parametrize("name", ["episodes.json", "episodes.json.gz"])
def test_episodes_round_trip(tmp_path, name):
    episodes = _episodes()
    path = write_episodes(tmp_path / name, episodes)
    raw = path.read_bytes()
    data = json.loads(gzip.decompress(raw) if name.endswith(".gz") else raw)
    # habitat-lab's ObjectNav v1 shape: goals live in goals_by_category under "<scene basename>_<category>"
    assert [e["scene_id"] for e in data["episodes"]] == ["llm3d/sim_011000"] * 2
    assert [g["object_id"] for g in data["goals_by_category"]["sim_011000_chair"]] == [3, 7]
    assert data["episodes"][0]["goals"] == [] and data["episodes"][0]["info"]["geodesic_distance"] == 3.7
    assert len(data["llm3d_absent_episodes"]) == 1
    back = read_episodes(path)
    assert len(back) == 3
    for a, b in zip(episodes, back):
        assert (a.episode_id, a.scene_id, a.seed, a.instruction, a.goal_type, a.category, a.target_ids) == \
            (b.episode_id, b.scene_id, b.seed, b.instruction, b.goal_type, b.category, b.target_ids)
        assert b.start == pytest.approx(a.start) and b.geodesic_distance == a.geodesic_distance
        assert [(g.object_id, g.box, g.view_points) for g in a.goals] == \
            [(g.object_id, pytest.approx(g.box), g.view_points) for g in b.goals]
    assert back[2].absent and not back[0].absent


def test_frames_convert_both_ways():
    assert to_habitat_position(1.0, 2.0, 0.5) == [1.0, 0.5, -2.0]
    assert from_habitat_position([1.0, 0.5, -2.0]) == (1.0, 2.0, 0.5)
    # llm3d yaw 0 looks along +x; habitat's identity looks along -z, so yaw 0 is a -90 deg turn about +y
    q = to_habitat_rotation(0.0)
    assert q == pytest.approx([0.0, -math.sin(math.pi / 4), 0.0, math.cos(math.pi / 4)])
    for yaw in (-3.0, -1.0, 0.0, 0.7, 3.1):
        assert from_habitat_rotation(to_habitat_rotation(yaw)) == pytest.approx(yaw)


def test_a_plain_objectnav_file_reads_with_category_instructions(tmp_path):
    data = {"episodes": [{"episode_id": "7", "scene_id": "data/scene_datasets/sim_011002.glb",
                          "start_position": [1.0, 0.0, -2.0], "start_rotation": [0, 0, 0, 1],
                          "object_category": "tv_monitor", "info": {"geodesic_distance": 5.0,
                                                                     "closest_goal_object_id": 12}}],
            "goals_by_category": {"sim_011002_tv_monitor": [
                {"object_id": 11, "object_category": "tv_monitor", "position": [3.0, 1.0, -4.0], "view_points": []},
                {"object_id": 12, "object_category": "tv_monitor", "position": [0.0, 1.0, 1.0], "view_points": []}]}}
    (tmp_path / "objectnav.json").write_text(json.dumps(data))
    (ep,) = read_episodes(tmp_path / "objectnav.json")
    assert ep.seed == 11002 and ep.instruction == "Go to the tv monitor." and ep.goal_type == "object_goal"
    assert ep.target_ids == [12] and ep.start == pytest.approx((1.0, 2.0, math.pi / 2))
    assert ep.goals[0].box == pytest.approx([3.0, 4.0, 1.0, 3.0, 4.0, 1.0])


def test_bad_files_are_named(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EpisodeFileError, match="not a readable episode file"):
        read_episodes(tmp_path / "bad.json")
    (tmp_path / "none.json").write_text(json.dumps({"foo": 1}))
    with pytest.raises(EpisodeFileError, match="no 'episodes' list"):
        read_episodes(tmp_path / "none.json")
    other = {"episodes": [{"episode_id": "1", "scene_id": "mp3d/17DRP5sb8fy/17DRP5sb8fy.glb", "start_position": [0, 0, 0],
                           "start_rotation": [0, 0, 0, 1], "object_category": "chair"}], "goals_by_category": {}}
    (tmp_path / "mp3d.json").write_text(json.dumps(other))
    with pytest.raises(EpisodeFileError, match="not one of llm3d's simulator scenes"):
        read_episodes(tmp_path / "mp3d.json")
    with pytest.raises(EpisodeFileError, match="goal type"):
        NavEpisode("x", "sim_011000", 11000, (0, 0, 0), "Go.", "pointnav", "chair", [1])
