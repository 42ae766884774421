"""The driven path counts as free floor for navigation goals, and the mapper remembers it."""

import numpy as np

from llm3d_core.mapping.goals import GoalConfig, NavigationMap


def corridor_points() -> np.ndarray:
    """A 6 m corridor between two walls whose floor was only seen at its far end (x > 4 m)."""
    xs = np.arange(0.0, 6.0, 0.05)
    walls = [np.column_stack([xs, np.full_like(xs, y), np.full_like(xs, 0.5)]) for y in (-0.6, 0.6)]
    fx, fy = np.meshgrid(np.arange(4.0, 6.0, 0.05), np.arange(-0.5, 0.55, 0.05))
    floor = np.column_stack([fx.ravel(), fy.ravel(), np.zeros(fx.size)])
    return np.concatenate(walls + [floor])


def test_the_driven_path_is_free_and_connects_the_robot_to_goals():
    cfg = GoalConfig()
    points = corridor_points()
    # The robot drove x 0.2 -> 4.2, its positions recorded 45 cm apart (wider than its footprint).
    path = np.column_stack([np.arange(0.2, 4.3, 0.45), np.zeros(10)])
    without = NavigationMap.from_points(points, cfg)
    with_path = NavigationMap.from_points(points, cfg, visited_xy=path)
    assert not without.is_free(1.0, 0.0) and with_path.is_free(1.0, 0.0)
    assert not with_path.is_free(1.0, 0.55)  # the walls, inflated, still win beside the path
    box = np.array([1.8, -0.55, 0.0, 2.2, -0.45, 0.8])  # a target against the wall, in the unseen stretch
    goal = with_path.choose_goal(box, robot_xy=np.array([0.2, 0.0]), max_distance=1.0)
    assert goal.target_distance <= 1.0 and with_path.is_free(goal.x, goal.y)
    reach = with_path.reachable(np.array([0.2, 0.0]))
    far_end = with_path.grid.world_to_cell(np.array([[5.5, 0.0]]))[0]
    assert reach[far_end[0], far_end[1]]  # the path joins the robot to the floor seen at the far end
    # The path alone extends the grid: a robot that drove beyond every mapped point still gets a grid there.
    far = NavigationMap.from_points(points, cfg, visited_xy=np.array([[-2.0, 0.0], [-1.9, 0.0]]))
    assert far.is_free(-2.0, 0.0)


def test_mapper_trajectory_survives_save_and_load(tmp_path):
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from tests.core.test_mapper import plane_frame, small_config

    mapper = FeatureFusionMapper(small_config())
    for x in (0.0, 0.02, 0.3):  # the 2 cm step is below the recording step
        pose = np.eye(4)
        pose[0, 3] = x
        mapper.integrate(plane_frame(2.0, pose))
    assert mapper.visited_xy().shape == (2, 2)
    mapper.save(tmp_path / "map")
    loaded = FeatureFusionMapper.load(tmp_path / "map")
    np.testing.assert_allclose(loaded.visited_xy(), mapper.visited_xy(), atol=1e-4)
    loaded.reset()
    assert loaded.visited_xy().shape == (0, 2)


def test_a_robot_that_has_not_moved_still_reaches_the_floor_it_sees_ahead():
    """Its footprint is free but cut off from the seen floor by the camera's blind zone."""
    cfg = GoalConfig()
    nav = NavigationMap.from_points(corridor_points(), cfg, visited_xy=np.array([[0.5, 0.0]]))
    reach = nav.reachable(np.array([0.5, 0.0]))
    for x in (0.5, 5.0):  # the footprint and the floor seen at the far end
        rc = nav.grid.world_to_cell(np.array([[x, 0.0]]))[0]
        assert reach[rc[0], rc[1]]
    box = np.array([4.5, -0.55, 0.0, 4.8, -0.45, 0.8])
    goal = nav.choose_goal(box, robot_xy=np.array([0.5, 0.0]), max_distance=1.0)
    assert goal.target_distance <= 1.0 and goal.x > 3.5


def test_positions_recorded_between_fused_frames_join_the_path(tmp_path):
    """A live node adds TF poses between fused frames (record_position, from another thread): the
    path stays connected when fusion is slower than the robot, and saves with the map."""
    import threading

    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from tests.core.test_mapper import plane_frame, small_config

    mapper = FeatureFusionMapper(small_config())
    poses = [np.eye(4) for _ in range(2)]
    poses[1][0, 3] = 2.0  # fused frames 2 m apart: more than the 0.5 m a path gap is bridged
    drive = np.column_stack([np.linspace(0.0, 2.0, 201), np.zeros(201), np.zeros(201)])
    recorder = threading.Thread(target=lambda: [mapper.record_position(p) for p in drive])
    mapper.integrate(plane_frame(2.0, poses[0]))
    recorder.start()  # the drive between the two fused frames, as the node's pose timer records it
    recorder.join()
    mapper.integrate(plane_frame(2.0, poses[1]))
    xy = mapper.visited_xy()
    steps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    assert len(xy) >= 35 and steps.max() <= 0.06  # every 5 cm (TRAJECTORY_STEP), no gap
    mapper.save(tmp_path / "map")
    np.testing.assert_allclose(FeatureFusionMapper.load(tmp_path / "map").visited_xy(), xy, atol=1e-4)
