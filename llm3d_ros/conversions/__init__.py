"""Message <-> numpy conversions for the llm3d nodes and clients: the one place that knows message layouts
(nav2 keeps its converters together the same way). One module per kind of message: images (and
CameraInfo), transforms (and poses, odometry, velocity commands), clouds, markers, navigation (goal
status, occupancy grids, paths) and objects (llm3d_interfaces/Object3D); all re-exported here.

Nothing here needs a running graph or an initialised rclpy: tests build messages in memory.
Decoding (messages -> numpy) lives in `llm3d_core.messages`, shared with the bag reader, and is
re-exported here; this package adds what needs the rclpy message classes: building messages.
Conventions follow ROS REP 103/105 and `llm3d_core.geometry`: OpenCV optical camera frames,
4x4 homogeneous transforms that map child-frame coordinates into the parent frame, quaternions
stored (x, y, z, w) as in geometry_msgs.

Image payloads arrive as `array.array`; `np.frombuffer` reads them without a copy, and a strided
view honours `step` (row padding) so padded images are never copied twice.
"""

from llm3d_core.messages import (  # noqa: F401  (re-exported: the nodes' one conversions module)
    COLOR_ENCODINGS,
    DEPTH_ENCODINGS,
    ConversionError,
    camera_info_to_K,
    compose_matrix,
    decode_depth_m,
    decode_rgb,
    image_to_depth_m,
    image_to_rgb,
    matrix_to_quaternion,
    normalize_quaternion,
    quaternion_slerp,
    quaternion_to_matrix,
    rgbd_frame_from_messages,
    stamp_to_ns,
    transform_to_matrix,
)
from llm3d_ros.conversions.clouds import pointcloud2_to_xyzrgb, pointcloud2_xyzrgb, relevancy_cloud  # noqa: F401
from llm3d_ros.conversions.images import (  # noqa: F401
    TRANSPORTS,
    UINT16_NO_RETURN,
    camera_info_from_K,
    depth_to_compressed_depth,
    depth_to_image,
    ns_to_stamp,
    numpy_to_image,
    rgb_to_compressed,
    transport_topic,
)
from llm3d_ros.conversions.markers import (  # noqa: F401
    BoxObject,
    grounding_markers,
    live_markers,
    marker_boxes,
    objects_to_markers,
)
from llm3d_ros.conversions.navigation import (  # noqa: F401
    goal_status_array,
    newest_goal_status,
    occupancy_grid_from_msg,
    occupancy_grid_msg,
    path_msg,
    path_to_xyz,
)
from llm3d_ros.conversions.objects import grounded_to_object3d, object3d_box  # noqa: F401
from llm3d_ros.conversions.transforms import (  # noqa: F401
    goal_from_pose_stamped,
    goal_to_pose_stamped,
    matrix_to_transform,
    matrix_to_transform_stamped,
    odometry_msg,
    pose_to_matrix,
    twist_to_command,
)
