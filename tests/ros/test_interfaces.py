"""Our interfaces across real processes over DDS, and their message layouts."""

import pytest
from rclpy.serialization import deserialize_message, serialize_message

from llm3d_ros.selftest import cross_process_roundtrip

pytestmark = pytest.mark.ros


def test_service_and_topic_round_trip_across_processes():
    result = cross_process_roundtrip(messages=10, timeout_s=30.0)
    assert result.ok, result.detail
    assert result.detail.startswith("10/10 messages")


def test_ground_response_serialises_with_boxes():
    from llm3d_interfaces.msg import Object3D
    from llm3d_interfaces.srv import Ground

    obj = Object3D(id=4, label="coffee mug", score=0.75)
    obj.center.position.x, obj.center.position.y, obj.center.position.z = 1.0, 2.0, 0.8
    obj.size.x, obj.size.y, obj.size.z = 0.1, 0.1, 0.12
    response = Ground.Response(success=True, message="", objects=[obj])
    response.header.frame_id = "map"
    back = deserialize_message(serialize_message(response), Ground.Response)
    assert back.header.frame_id == "map"
    assert back.objects[0].label == "coffee mug"
    assert back.objects[0].center.position.z == pytest.approx(0.8)
    assert back.objects[0].size.z == pytest.approx(0.12)


def test_navigate_action_types():
    from llm3d_interfaces.action import NavigateTo

    goal = NavigateTo.Goal(instruction="go to the sofa", success_distance=1.0)
    feedback = NavigateTo.Feedback(distance_remaining=3.5, state="moving")
    result = NavigateTo.Result(success=True, message="arrived")
    result.final_pose.header.frame_id = "map"
    assert goal.instruction == "go to the sofa"
    assert feedback.state == "moving"
    assert deserialize_message(serialize_message(result), NavigateTo.Result).final_pose.header.frame_id == "map"


def test_tf_message_available():
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    msg = TFMessage(transforms=[TransformStamped(child_frame_id="camera")])
    assert deserialize_message(serialize_message(msg), TFMessage).transforms[0].child_frame_id == "camera"
