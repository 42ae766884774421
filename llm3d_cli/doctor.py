"""`llm3d doctor`: versions, and a PASS/FAIL line per check with the reason.

Exit code 0 only when every check passes. The ROS check is real: a second process and a
publish/subscribe plus service round trip over DDS.

`llm3d doctor --camera PROFILE` checks a running camera driver instead, against a profile of
launch/cameras (or an overlay YAML): its colour, depth and CameraInfo topics, the depth scale,
registration, frame ids, stamps, and the TF chain from the camera to the map frame.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

from llm3d_cli.registry import command
from llm3d_cli.usage import UsageError, positive_float


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


def _versions() -> list[tuple[str, str]]:
    rows = [("llm3d", importlib.import_module("llm3d_core").__version__), ("python", platform.python_version())]
    for label, module, attr in (("torch", "torch", "__version__"), ("open3d", "open3d", "__version__"),
                                ("numpy", "numpy", "__version__"), ("transformers", "transformers", "__version__")):
        try:
            rows.append((label, getattr(importlib.import_module(module), attr)))
        except Exception as err:  # a broken install is exactly what doctor reports
            rows.append((label, f"unavailable ({type(err).__name__}: {err})"))
    try:
        from importlib import metadata

        from rclpy.utilities import get_rmw_implementation_identifier

        rows.append(("rclpy", metadata.version("ros-rclpy")))
        rows.append(("rmw", get_rmw_implementation_identifier()))
    except Exception as err:
        rows.append(("rclpy", f"unavailable ({type(err).__name__}: {err})"))
    return rows


def check_interfaces() -> str:
    from llm3d_interfaces.action import NavigateTo
    from llm3d_interfaces.msg import Object3D, Object3DArray
    from llm3d_interfaces.srv import Ask, Ground, Plan
    from tf2_msgs.msg import TFMessage

    names = [t.__name__ for t in (Ask, Ground, Plan, NavigateTo, Object3D, Object3DArray, TFMessage)]
    return "imported " + ", ".join(names)


def check_dds() -> str:
    from llm3d_ros.selftest import cross_process_roundtrip

    result = cross_process_roundtrip()
    if not result.ok:
        raise RuntimeError(result.detail)
    return f"{result.detail} (pub/sub median {result.pubsub_ms:.1f} ms, service {result.service_ms:.1f} ms)"


def check_models() -> str:
    from llm3d_core.assets import offline_model_files

    found = offline_model_files()
    return "; ".join(f"{name}: {path.name} ({size_mb:.0f} MB)" for name, (path, size_mb) in found.items())


def check_rendering() -> str:
    import moderngl

    ctx = moderngl.create_standalone_context(backend="egl")
    try:
        renderer = ctx.info.get("GL_RENDERER", "?")
        return f"EGL context, OpenGL {ctx.version_code}, renderer {renderer}"
    finally:
        ctx.release()


def check_raycasting() -> str:
    import numpy as np
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(o3d.geometry.TriangleMesh.create_box()))
    rays = o3d.core.Tensor(np.array([[0.5, 0.5, 5.0, 0.0, 0.0, -1.0]], dtype=np.float32))
    hit = float(scene.cast_rays(rays)["t_hit"].numpy()[0])
    if abs(hit - 4.0) > 1e-5:
        raise RuntimeError(f"ray hit at {hit}, expected 4.0")
    return "Open3D RaycastingScene (fallback renderer) works"


CHECKS: dict[str, Callable[[], str]] = {
    "interfaces import": check_interfaces,
    "DDS round trip (2 processes)": check_dds,
    "offline models found": check_models,
    "rendering context (EGL)": check_rendering,
    "raycasting fallback": check_raycasting,
}


def run_checks() -> list[CheckResult]:
    results = []
    for name, fn in CHECKS.items():
        t0 = time.perf_counter()
        try:
            detail, ok = fn(), True
        except Exception as err:
            detail, ok = f"{type(err).__name__}: {err}", False
        results.append(CheckResult(name, ok, detail, time.perf_counter() - t0))
    return results


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip", action="append", default=[], choices=list(CHECKS), help="skip a check (repeatable)")
    parser.add_argument("--camera", default=None, metavar="PROFILE",
                        help="check a running camera driver against a profile of launch/cameras (realsense_d4xx, "
                             "azure_kinect, oakd, sim) or an overlay YAML, instead of the installation")
    parser.add_argument("--timeout", type=positive_float, default=10.0, metavar="S",
                        help="--camera: watch the topics for at most this many seconds (default 10)")
    parser.add_argument("--namespace", default="", help="--camera: the stack's namespace, e.g. robot1 (default: none)")


def run_camera(profile_name: str, timeout_s: float, namespace: str) -> int:
    """The camera checks: one PASS/FAIL line each, a hint under each failure; 0 only when all pass."""
    from llm3d_core.camera_profiles import load_profile
    from llm3d_ros.node_set import normalize_namespace

    try:
        profile = load_profile(profile_name)
    except ValueError as err:  # unknown profile, missing or invalid overlay
        raise UsageError(f"argument --camera: {err}") from err
    try:
        namespace = normalize_namespace(namespace)
    except ValueError as err:
        raise UsageError(f"argument --namespace: {err}") from err
    from llm3d_ros.camera_check import probe_camera

    where = f" in namespace {namespace}" if namespace else ""
    print(f"camera profile {profile.name}: {profile.description or profile.driver} ({profile.path}); "
          f"watching for up to {timeout_s:g} s{where}", flush=True)
    results = probe_camera(profile, timeout_s, namespace)
    width = max(len(r.name) for r in results)
    for r in results:
        print(f"{'PASS' if r.ok else 'FAIL'}  {r.name:<{width}}  {r.detail}")
        if not r.ok and r.hint:
            print(f"      {'':<{width}}  hint: {r.hint}")
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


@command("doctor", "check the installation (versions, interfaces, DDS, models, rendering) or, with --camera, "
                   "a camera driver", _add_args)
def run(args: argparse.Namespace) -> int:
    from llm3d_ros.env import apply_ros_environment

    apply_ros_environment()
    if args.camera is not None:
        return run_camera(args.camera, args.timeout, args.namespace)
    for label, version in _versions():
        print(f"  {label:<13} {version}")
    skip = set(args.skip)
    for name in skip:
        CHECKS.pop(name, None)
    results = run_checks()
    width = max(len(r.name) for r in results)
    for r in results:
        print(f"{'PASS' if r.ok else 'FAIL'}  {r.name:<{width}}  {r.detail}  [{r.seconds:.1f}s]")
    failed = [r.name for r in results if not r.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed" + (f", {len(skip)} skipped" if skip else ""))
    return 1 if failed else 0
