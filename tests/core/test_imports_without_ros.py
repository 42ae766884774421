"""llm3d_core and sim must import on a machine without ROS (style rule 1)."""

import subprocess
import textwrap

PROBE = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    for name in ("rclpy", "rosidl_runtime_py", "llm3d_interfaces", "llm3d_ros"):
        sys.modules[name] = None  # any import of these now raises ImportError
    imported = []
    for pkg_name in ("llm3d_core", "sim"):
        pkg = importlib.import_module(pkg_name)
        imported.append(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, pkg_name + "."):
            importlib.import_module(info.name)
            imported.append(info.name)
    print(len(imported), " ".join(imported))
    """
)


def test_core_and_sim_import_without_rclpy(python_exe):
    result = subprocess.run([python_exe, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    count, names = result.stdout.split(" ", 1)
    assert "llm3d_core.config" in names.split()
    assert int(count) >= 4
