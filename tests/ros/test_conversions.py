"""Message <-> numpy conversions, tested on messages built in memory (no running graph)."""

import array
from dataclasses import dataclass

import numpy as np
import pytest
from geometry_msgs.msg import Transform, TransformStamped
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from visualization_msgs.msg import Marker, MarkerArray

from llm3d_ros.conversions import (
    ConversionError,
    camera_info_to_K,
    image_to_depth_m,
    image_to_rgb,
    matrix_to_quaternion,
    matrix_to_transform,
    matrix_to_transform_stamped,
    ns_to_stamp,
    numpy_to_image,
    objects_to_markers,
    pointcloud2_to_xyzrgb,
    pointcloud2_xyzrgb,
    quaternion_slerp,
    quaternion_to_matrix,
    rgbd_frame_from_messages,
    stamp_to_ns,
    transform_to_matrix,
)

pytestmark = pytest.mark.ros

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)  # odd width: padding and step matter


def roundtrip(msg):
    """Through CDR, as a message from another process arrives (data becomes array.array)."""
    return deserialize_message(serialize_message(msg), type(msg))


def random_rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    return quaternion_to_matrix(q / np.linalg.norm(q))


# ------------------------------------------------------------------ colour images
@pytest.mark.parametrize("encoding, make", [
    ("rgb8", lambda rgb: rgb),
    ("bgr8", lambda rgb: rgb[:, :, ::-1]),
    ("rgba8", lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])),
    ("bgra8", lambda rgb: np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 9, np.uint8)])),
])
@pytest.mark.parametrize("padding", [0, 3])
def test_colour_encodings_give_rgb(encoding, make, padding):
    msg = roundtrip(numpy_to_image(make(RGB), encoding, "cam", row_padding=padding))
    assert isinstance(msg.data, array.array)
    assert msg.step == RGB.shape[1] * len(encoding.rstrip("8")) + padding
    out = image_to_rgb(msg)
    assert out.dtype == np.uint8 and out.shape == RGB.shape and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, RGB)


def test_mono8_repeats_the_channel():
    gray = RGB[:, :, 0]
    out = image_to_rgb(numpy_to_image(gray, "mono8", row_padding=1))
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


def test_row_padding_bytes_are_ignored():
    msg = numpy_to_image(RGB, "rgb8", row_padding=4)
    data = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step).copy()
    data[:, -4:] = 255  # garbage in the padding must not leak into pixels
    msg.data = data.tobytes()
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


# ------------------------------------------------------------------ depth images
DEPTH_MM = RNG.integers(300, 4000, (4, 6), dtype=np.uint16)


@pytest.mark.parametrize("encoding", ["16UC1", "mono16"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_uint16_depth_scaled_to_metres(encoding, bigendian):
    depth = DEPTH_MM.copy()
    depth[0, 0], depth[1, 1] = 0, 65535  # both mean "no reading"
    msg = roundtrip(numpy_to_image(depth, encoding, row_padding=2, bigendian=bigendian))
    metres = image_to_depth_m(msg, depth_scale=1000.0)
    assert metres.dtype == np.float32 and metres.shape == depth.shape
    assert metres[0, 0] == 0 and metres[1, 1] == 0
    np.testing.assert_allclose(metres[2:], depth[2:] / 1000.0, rtol=1e-6)
    np.testing.assert_allclose(image_to_depth_m(msg, depth_scale=5000.0)[2:], depth[2:] / 5000.0, rtol=1e-6)


@pytest.mark.parametrize("bigendian", [False, True])
def test_float_depth_in_metres_with_invalid_values_zeroed(bigendian):
    depth = (DEPTH_MM / 1000.0).astype(np.float32)
    depth[0, :3] = [np.nan, np.inf, -1.0]
    metres = image_to_depth_m(roundtrip(numpy_to_image(depth, "32FC1", row_padding=4, bigendian=bigendian)))
    assert metres.dtype == np.float32 and metres.dtype.isnative
    np.testing.assert_array_equal(metres[0, :3], 0.0)
    np.testing.assert_allclose(metres[1:], depth[1:])


def test_depth_scale_must_be_positive():
    with pytest.raises(ConversionError, match="depth_scale"):
        image_to_depth_m(numpy_to_image(DEPTH_MM, "16UC1"), depth_scale=0.0)


# ------------------------------------------------------------------ bad images
def test_wrong_encoding_names_it():
    msg = numpy_to_image(RGB, "rgb8")
    msg.encoding = "yuv422"
    with pytest.raises(ConversionError, match="yuv422"):
        image_to_rgb(msg)
    with pytest.raises(ConversionError, match="unsupported depth encoding 'rgb8'"):
        image_to_depth_m(numpy_to_image(RGB, "rgb8"))


def test_truncated_data_is_a_size_mismatch():
    msg = numpy_to_image(RGB, "rgb8")
    msg.data = bytes(msg.data)[:-5]
    with pytest.raises(ConversionError, match="height 5 x step 21"):
        image_to_rgb(msg)


def test_step_too_small_and_zero_size():
    msg = numpy_to_image(RGB, "rgb8")
    msg.step = 10
    with pytest.raises(ConversionError, match="step 10"):
        image_to_rgb(msg)
    with pytest.raises(ConversionError, match="zero size"):
        image_to_rgb(Image(encoding="rgb8", height=0, width=4, step=12))
    assert issubclass(ConversionError, ValueError)


def test_numpy_to_image_rejects_wrong_arrays():
    with pytest.raises(ConversionError, match="dtype uint16"):
        numpy_to_image(DEPTH_MM.astype(np.int32), "16UC1")
    with pytest.raises(ConversionError, match="3 channel"):
        numpy_to_image(DEPTH_MM.astype(np.uint8), "rgb8")


# ------------------------------------------------------------------ camera info and frames
def camera_info(w=7, h=5, fx=50.0) -> CameraInfo:
    return CameraInfo(width=w, height=h, k=[fx, 0.0, w / 2, 0.0, fx, h / 2, 0.0, 0.0, 1.0])


def test_camera_info_to_K_and_validation():
    K = camera_info_to_K(roundtrip(camera_info()))
    np.testing.assert_allclose(K, [[50, 0, 3.5], [0, 50, 2.5], [0, 0, 1]])
    with pytest.raises(ConversionError, match="fx, fy > 0"):
        camera_info_to_K(CameraInfo())  # an uncalibrated driver sends zeros
    bad = camera_info()
    bad.k[4] = float("nan")
    with pytest.raises(ConversionError, match="non-finite"):
        camera_info_to_K(bad)


def test_rgbd_frame_from_messages():
    depth = RNG.integers(300, 4000, (5, 7), dtype=np.uint16)
    stamp = ns_to_stamp(12_500_000_000)
    color_msg = numpy_to_image(RGB[:, :, ::-1], "bgr8", "cam", stamp)
    T = np.eye(4)
    T[:3, 3] = [1, 2, 3]
    frame = rgbd_frame_from_messages(color_msg, numpy_to_image(depth, "16UC1", "cam", stamp), camera_info(), T)
    np.testing.assert_array_equal(frame.rgb, RGB)
    np.testing.assert_allclose(frame.depth, depth / 1000.0, rtol=1e-6)
    assert frame.timestamp == pytest.approx(12.5)
    with pytest.raises(ConversionError, match="sizes differ"):
        rgbd_frame_from_messages(color_msg, numpy_to_image(np.ones((4, 7), np.uint16), "16UC1"), camera_info(), T)
    with pytest.raises(ConversionError, match="CameraInfo is for 8x5"):
        rgbd_frame_from_messages(color_msg, numpy_to_image(depth, "16UC1"), camera_info(w=8), T)


def test_stamps_round_trip_exactly():
    assert stamp_to_ns(ns_to_stamp(1_795_000_000_123_456_789)) == 1_795_000_000_123_456_789
    with pytest.raises(ConversionError):
        ns_to_stamp(-1)


# ------------------------------------------------------------------ transforms
def test_quaternion_matrix_round_trip_and_known_rotation():
    rng = np.random.default_rng(1)
    for _ in range(200):
        R = random_rotation(rng)
        np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(R)), R, atol=1e-12)
    # 90 degrees about z: x -> y.
    Rz = quaternion_to_matrix([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    np.testing.assert_allclose(Rz @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    # Near 180 degrees, where a trace-based formula loses precision.
    R180 = quaternion_to_matrix([1, 1e-9, 0, 1e-9])
    np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(R180)), R180, atol=1e-9)


def test_transform_matrix_round_trip_and_normalisation():
    rng = np.random.default_rng(2)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = random_rotation(rng), [0.5, -1.0, 2.0]
    msg = roundtrip(matrix_to_transform_stamped(T, "map", "camera", ns_to_stamp(5)))
    assert (msg.header.frame_id, msg.child_frame_id, stamp_to_ns(msg.header.stamp)) == ("map", "camera", 5)
    np.testing.assert_allclose(transform_to_matrix(msg), T, atol=1e-12)
    np.testing.assert_allclose(transform_to_matrix(matrix_to_transform(T)), T, atol=1e-12)
    scaled = Transform()
    scaled.rotation.z, scaled.rotation.w = 2.0, 2.0  # not unit length: normalised, not rejected
    np.testing.assert_allclose(transform_to_matrix(scaled)[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)


@pytest.mark.parametrize("field, value", [("rotation.w", float("nan")), ("translation.x", float("inf"))])
def test_non_finite_transforms_are_rejected(field, value):
    msg = TransformStamped()
    msg.transform.rotation.w = 1.0
    part, attr = field.split(".")
    setattr(getattr(msg.transform, part), attr, value)
    with pytest.raises(ConversionError, match="finite"):
        transform_to_matrix(msg)
    zero = Transform()
    zero.rotation.w = 0.0
    with pytest.raises(ConversionError, match="zero length"):
        transform_to_matrix(zero)
    with pytest.raises(ConversionError, match="orthonormal"):
        matrix_to_transform(np.diag([2.0, 1.0, 1.0, 1.0]))


def test_slerp_midpoint_and_shorter_arc():
    q0 = np.array([0, 0, 0, 1.0])
    q1 = np.array([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])  # 90 degrees about z
    mid = quaternion_slerp(q0, q1, 0.5)
    np.testing.assert_allclose(mid, [0, 0, np.sin(np.pi / 8), np.cos(np.pi / 8)], atol=1e-12)
    np.testing.assert_allclose(quaternion_slerp(q0, -q1, 0.5), mid, atol=1e-12)  # -q1 is the same rotation


# ------------------------------------------------------------------ point clouds and markers
def test_pointcloud2_layout_reads_back():
    points = np.array([[0.0, 1.0, 2.0], [-1.5, 0.25, 3.0], [np.nan, 0.0, 0.0]], np.float32)
    colors = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 1.0], [1.0, 1.0, 1.0]], np.float32)
    msg = roundtrip(pointcloud2_xyzrgb(points, colors, "map", ns_to_stamp(7)))
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1), ("z", 8, PointField.FLOAT32, 1),
        ("rgb", 12, PointField.FLOAT32, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step, msg.is_dense) == (1, 2, 16, 32, True)
    assert msg.header.frame_id == "map"
    xyz, rgb = pointcloud2_to_xyzrgb(msg)
    np.testing.assert_allclose(xyz, points[:2])
    np.testing.assert_allclose(rgb, np.round(colors[:2] * 255) / 255)
    # The rgb float's bits are 0x00RRGGBB, as RViz unpacks them.
    packed = np.frombuffer(msg.data, np.uint8).reshape(2, 16)[:, 12:16].copy().view("<u4")[:, 0]
    assert packed[0] == 0xFF0000 and packed[1] == (128 << 8 | 255)


def test_empty_pointcloud2_and_missing_fields():
    msg = pointcloud2_xyzrgb(np.zeros((0, 3)), np.zeros((0, 3)), "map")
    assert msg.width == 0 and len(msg.data) == 0
    assert pointcloud2_to_xyzrgb(msg)[0].shape == (0, 3)
    with pytest.raises(ConversionError, match="rgb"):
        pointcloud2_to_xyzrgb(PointCloud2(fields=[PointField(name="x")]))


@dataclass
class Box:
    """What objects_to_markers reads of an object (the core's MapObject has these fields too)."""

    id: int
    label: str
    box_min: np.ndarray
    box_max: np.ndarray


def map_object(i: int, label: str) -> Box:
    return Box(id=i, label=label, box_min=np.array([0.0, 0.0, 0.0]) + i, box_max=np.array([1.0, 0.5, 0.25]) + i)


@pytest.mark.parametrize("style", ["line_list", "cube"])
def test_object_markers_start_with_deleteall(style):
    markers = roundtrip(objects_to_markers([map_object(3, "chair"), map_object(4, "")], "map", style=style))
    assert isinstance(markers, MarkerArray)
    first, *rest = markers.markers
    assert first.action == Marker.DELETEALL
    boxes = [m for m in rest if m.type in (Marker.LINE_LIST, Marker.CUBE)]
    texts = [m for m in rest if m.type == Marker.TEXT_VIEW_FACING]
    assert len(boxes) == 2 and len(texts) == 2
    assert [t.text for t in texts] == ["chair #3", "object #4"]
    assert len({(m.ns, m.id) for m in rest}) == 4  # unique ids: RViz would overwrite duplicates
    assert all(m.header.frame_id == "map" for m in markers.markers)
    box = boxes[0]
    if style == "line_list":
        assert len(box.points) == 24  # 12 edges
        xs = sorted({p.x for p in box.points})
        assert xs == [3.0, 4.0]
    else:
        assert (box.pose.position.x, box.scale.y) == (3.5, 0.5) and 0 < box.color.a < 1
    assert texts[0].pose.position.z > 3.25  # above the box
    with pytest.raises(ConversionError):
        objects_to_markers([map_object(1, "x")], "map", style="sphere")


def test_occupancy_grid_message_has_nav2_values_and_layout():
    """The mapper's /map: Nav2 values, row-major from the origin cell; every goal-free cell is free."""
    from llm3d_core.mapping.goals import GoalConfig, NavigationMap
    from llm3d_ros.conversions import occupancy_grid_msg

    xs, ys = np.meshgrid(np.arange(0.0, 3.0, 0.05), np.arange(0.0, 2.0, 0.05))
    floor = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)
    wall = np.stack([np.full(40, 2.0), np.linspace(0, 2, 40), np.full(40, 0.5)], axis=1)  # x = 2 m, 0.5 m high
    nav = NavigationMap.from_points(np.concatenate([floor, wall]), GoalConfig(), np.array([[0.5, 1.0]]))
    values = nav.nav2_values()
    assert values.dtype == np.int8 and set(np.unique(values)) == {0, 100}
    assert (values[nav.free] == 0).all()  # goals are only chosen where Nav2 sees free floor
    msg = occupancy_grid_msg(values, nav.grid.origin, nav.grid.cell, 0.0, "map")
    assert (msg.info.height, msg.info.width) == values.shape and msg.header.frame_id == "map"
    data = np.frombuffer(bytes(msg.data), np.int8).reshape(msg.info.height, msg.info.width)
    # The wall's cell, found the way a Nav2 consumer indexes: col from x, row from y.
    col = int((2.0 - msg.info.origin.position.x) // msg.info.resolution)
    row = int((1.0 - msg.info.origin.position.y) // msg.info.resolution)
    assert data[row, col] == 100 and data[row, col - 10] == 0
    with pytest.raises(ConversionError, match="2D int8"):
        occupancy_grid_msg(values.astype(np.int16), nav.grid.origin, 0.05, 0.0, "map")


def test_compressed_builders_round_trip_through_the_shared_decoders():
    """What a live CompressedImage stream carries decodes with the bag reader's decoders."""
    from llm3d_ros.conversions import decode_depth_m, decode_rgb, depth_to_compressed_depth, rgb_to_compressed, transport_topic

    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    assert np.array_equal(decode_rgb(rgb_to_compressed(rgb, "png")), rgb)
    smooth = np.stack([*np.meshgrid(np.arange(64) * 4, np.arange(48) * 5), np.full((48, 64), 90)], -1).astype(np.uint8)
    assert np.abs(decode_rgb(rgb_to_compressed(smooth, "jpeg")).astype(int) - smooth).mean() < 3  # lossy, close
    depth = np.full((48, 64), 1500, np.uint16)
    depth[0, 0] = 0  # no return
    decoded = decode_depth_m(depth_to_compressed_depth(depth), 1000.0)
    assert decoded[0, 0] == 0 and np.allclose(decoded[1:, 1:], 1.5)
    assert transport_topic("camera/depth/image_raw", "compressedDepth") == "camera/depth/image_raw/compressedDepth"
    assert transport_topic("camera/color/image_raw", "raw") == "camera/color/image_raw"
    with pytest.raises(ConversionError, match="uint16"):
        depth_to_compressed_depth(depth.astype(np.float32))


def test_path_msg_poses_face_along_the_trajectory():
    from llm3d_ros.conversions import ConversionError, path_msg

    msg = path_msg(np.array([[0.0, 0.0, 1.2], [1.0, 0.0, 1.2], [1.0, 1.0, 1.3]]), "map")
    assert msg.header.frame_id == "map" and len(msg.poses) == 3
    yaw = [2 * np.arctan2(p.pose.orientation.z, p.pose.orientation.w) for p in msg.poses]
    assert np.allclose(yaw, [0.0, np.pi / 2, np.pi / 2])  # towards the next position; the last keeps its heading
    assert msg.poses[2].pose.position.z == pytest.approx(1.3)
    assert path_msg(np.zeros((0, 3)), "map").poses == []
    with pytest.raises(ConversionError, match="finite"):
        path_msg(np.array([[np.nan, 0.0, 0.0]]), "map")


# ---------------------------------------------------------------------------- reading what RViz shows (llm3d snapshot)
@pytest.mark.parametrize("style", ["line_list", "cube"])
def test_object_markers_read_back_as_labelled_boxes(style):
    from llm3d_ros.conversions import live_markers, marker_boxes

    sent = objects_to_markers([map_object(3, "chair"), map_object(4, "")], "map", style=style)
    boxes = marker_boxes(live_markers([roundtrip(sent)]))
    assert [frame for frame, _ in boxes] == ["map", "map"]
    by_label = {box.label: box for _, box in boxes}
    assert set(by_label) == {"chair #3", "object #4"}
    chair = by_label["chair #3"]
    assert np.allclose(chair.box_min, [3.0, 3.0, 3.0]) and np.allclose(chair.box_max, [4.0, 3.5, 3.25])
    assert chair.color != by_label["object #4"].color  # the palette colour by id, as RViz shows it


def test_live_markers_replay_add_delete_and_deleteall():
    from llm3d_ros.conversions import live_markers, marker_boxes

    first = objects_to_markers([map_object(1, "a"), map_object(2, "b")], "map")
    assert len(live_markers([first])) == 4
    second = objects_to_markers([map_object(5, "c")], "map")  # DELETEALL first: a and b are gone
    assert sorted(b.label for _, b in marker_boxes(live_markers([first, second]))) == ["c #5"]
    delete = MarkerArray(markers=[Marker(ns="llm3d_objects", id=11, action=Marker.DELETE)])  # c's label
    (only,) = marker_boxes(live_markers([first, second, delete]))
    assert only[1].label == "" and np.allclose(only[1].box_min, 5.0)
    text = Marker(ns="t", id=0, type=Marker.TEXT_VIEW_FACING, text="alone")  # zero orientation: identity
    text.header.frame_id = "odom"
    text.pose.position.x = 2.0
    (alone,) = marker_boxes([text])
    assert alone[0] == "odom" and alone[1].label == "alone" and np.allclose(alone[1].box_max, [2.0, 0.0, 0.0])


def test_occupancy_grid_reads_back_and_path_positions():
    from nav_msgs.msg import Path as PathMsg

    from llm3d_ros.conversions import occupancy_grid_from_msg, occupancy_grid_msg, path_msg, path_to_xyz

    values = np.array([[-1, 0, 100], [0, 0, 50]], np.int8)
    grid = occupancy_grid_from_msg(roundtrip(occupancy_grid_msg(values, np.array([1.0, -2.0]), 0.05, 0.0, "map")))
    assert np.array_equal(grid.data, values) and np.allclose(grid.origin, [1.0, -2.0])
    assert grid.cell == pytest.approx(0.05)  # float32 on the wire
    bad = occupancy_grid_msg(values, np.zeros(2), 0.05, 0.0, "map")
    bad.info.width = 4
    with pytest.raises(ConversionError, match="cells"):
        occupancy_grid_from_msg(bad)
    positions = np.array([[0.0, 0.0, 1.0], [1.0, 0.5, 1.0]])
    assert np.allclose(path_to_xyz(roundtrip(path_msg(positions, "map"))), positions)
    assert path_to_xyz(PathMsg()).shape == (0, 3)


def test_relevancy_cloud_colours_high_scores_red_and_caps_points():
    from llm3d_ros.conversions import ConversionError, pointcloud2_to_xyzrgb, relevancy_cloud

    centers = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]])
    points, colors = pointcloud2_to_xyzrgb(relevancy_cloud(centers, np.array([0.1, 0.3, 0.5]), 10, "map"))
    assert np.allclose(points, centers, atol=1e-6)
    assert colors[2, 0] > 0.99 and colors[2, 2] < 0.01 and colors[0, 2] > 0.99 and colors[0, 0] < 0.01
    assert pointcloud2_to_xyzrgb(relevancy_cloud(np.zeros((500, 3)), np.zeros(500), 100, "map"))[0].shape == (100, 3)
    with pytest.raises(ConversionError, match="scores"):
        relevancy_cloud(centers, np.zeros(2), 10, "map")
