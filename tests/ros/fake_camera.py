"""A stand-in camera driver for the doctor tests: `python -m tests.ros.fake_camera --profile NAME`.

Publishes, on a camera profile's topics, what such a driver and a robot publish: synthetic rgb8
colour, 16UC1 millimetre depth of a wall 1.5-2.5 m away (a tenth of the pixels without depth),
the colour CameraInfo, the camera mount on /tf_static (base_link -> camera_link -> optical frame)
and map -> odom -> base_link on /tf. Flags break one thing each, as a misconfigured robot would.
Prints READY once its publishers exist; runs until SIGINT or --lifetime.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from llm3d_ros.env import apply_ros_environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ros.fake_camera")
    parser.add_argument("--profile", default="realsense_d4xx")
    parser.add_argument("--rate", type=float, default=15.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--half-depth", action="store_true", help="depth at half the colour resolution (unaligned)")
    parser.add_argument("--no-map-odom", action="store_true", help="no map -> odom (localisation not running)")
    parser.add_argument("--namespace", default="", help="as a stack's namespace: topics and TF under it")
    parser.add_argument("--lifetime", type=float, default=60.0)
    args = parser.parse_args(argv)
    apply_ros_environment()

    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from tf2_msgs.msg import TFMessage

    from llm3d_core.camera_profiles import load_profile
    from llm3d_ros.conversions import matrix_to_transform_stamped, numpy_to_image

    profile = load_profile(args.profile)
    frame = profile.optical_frame or "camera_color_optical_frame"
    w, h = args.width, args.height
    dw, dh = (w // 2, h // 2) if args.half_depth else (w, h)
    rng = np.random.default_rng(0)
    rgb = np.zeros((h, w, 3), np.uint8)  # (H, W, 3)
    rgb[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    rgb[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    depth = np.linspace(1500, 2500, dw, dtype=np.float64)[None, :].repeat(dh, 0).astype(np.uint16)  # (H, W) mm
    depth[rng.random((dh, dw)) < 0.1] = 0
    f = 0.8 * w
    info = CameraInfo(width=w, height=h, k=[f, 0.0, w / 2, 0.0, f, h / 2, 0.0, 0.0, 1.0])
    info.header.frame_id = frame
    color_msg = numpy_to_image(rgb, "rgb8", frame)
    depth_msg = numpy_to_image(depth, "16UC1", frame)

    # Optical frame: z forward, x right, y down, from a camera_link that looks along base_link's x.
    T_link_optical = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
    T_base_link = np.eye(4)
    T_base_link[:3, 3] = (0.1, 0.0, 1.0)

    rclpy.init()
    remaps = ["--ros-args", "-r", "/tf:=tf", "-r", "/tf_static:=tf_static"] if args.namespace else None
    node = rclpy.create_node("fake_camera_driver", namespace=args.namespace, cli_args=remaps)
    image_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    color_pub = node.create_publisher(Image, profile.color_topic, image_qos)
    depth_pub = node.create_publisher(Image, profile.depth_topic, image_qos)
    info_pub = node.create_publisher(CameraInfo, profile.camera_info_topic, image_qos)
    tf_pub = node.create_publisher(TFMessage, "/tf", 100)
    static_pub = node.create_publisher(TFMessage, "/tf_static", QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    now = node.get_clock().now().to_msg()
    static_pub.publish(TFMessage(transforms=[
        matrix_to_transform_stamped(T_base_link, "base_link", "camera_link", now),
        matrix_to_transform_stamped(T_link_optical, "camera_link", frame, now)]))
    print("READY", flush=True)
    deadline = time.monotonic() + args.lifetime
    period = 1.0 / args.rate
    try:
        while rclpy.ok() and time.monotonic() < deadline:
            t0 = time.monotonic()
            stamp = node.get_clock().now().to_msg()
            odom = np.eye(4)
            odom[0, 3] = 0.01 * (t0 % 100)
            transforms = [matrix_to_transform_stamped(odom, "odom", "base_link", stamp)]
            if not args.no_map_odom:
                transforms.insert(0, matrix_to_transform_stamped(np.eye(4), "map", "odom", stamp))
            tf_pub.publish(TFMessage(transforms=transforms))
            for msg, pub in ((info, info_pub), (color_msg, color_pub), (depth_msg, depth_pub)):
                msg.header.stamp = stamp
                pub.publish(msg)
            time.sleep(max(0.0, period - (time.monotonic() - t0)))  # publishers need no spinning
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
