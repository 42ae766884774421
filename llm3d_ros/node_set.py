"""The llm3d node set, defined once.

`launch/bringup.launch.py` (machines with ROS 2 installed: `ros2 launch llm3d bringup.launch.py`)
and `llm3d bringup` (here, where `launch`/`ros2` cannot be installed) both build their node
list from `select_nodes()`, so they start the same executables with the same names,
parameters and remappings, and map the same bringup arguments onto parameters
(`forwarded_parameters`) and parameter files (`parameter_files`); `node_command` is one node's
process command line for `llm3d bringup` and `llm3d bench ros`.

Several robots on one ROS domain: each stack runs under its own namespace. As Nav2's bringup
does, every node remaps `/tf` and `/tf_static` to the relative `tf` and `tf_static`, so with a
namespace `robot1` the stack's transforms live on `/robot1/tf` and never mix with another
robot's `map -> odom -> base_link` (without a namespace they resolve to `/tf` as usual).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

# Nav2's multi-robot convention; relative names resolve inside the stack's namespace.
TF_REMAPPINGS: tuple[tuple[str, str], ...] = (("/tf", "tf"), ("/tf_static", "tf_static"))


@dataclass(frozen=True)
class NodeSpec:
    """One node of the bringup."""

    name: str  # node name, also its section in the YAML parameter file
    executable: str  # console script of package `llm3d` (`ros2 run llm3d <executable>`)
    module: str  # Python module whose `main()` runs the node (used by `llm3d bringup`)
    remappings: tuple[tuple[str, str], ...] = TF_REMAPPINGS
    # (bringup argument, node parameter) pairs: the argument's value, when given, overrides the parameter.
    forwarded_arguments: tuple[tuple[str, str], ...] = ()
    when: str = "always"  # always | sim | robot

    def __post_init__(self) -> None:
        if self.when not in ("always", "sim", "robot"):
            raise ValueError(f"NodeSpec.when must be always, sim or robot, got {self.when!r}")


# Nodes are listed here as they are implemented, in start order.
NODES: tuple[NodeSpec, ...] = (
    # The simulator first: its camera, TF and odometry are what the nodes after it consume.
    NodeSpec(name="llm3d_sim_bridge", executable="llm3d_sim_bridge", module="llm3d_ros.nodes.sim_bridge_node",
             when="sim"),
    NodeSpec(name="llm3d_mapper", executable="llm3d_mapper", module="llm3d_ros.nodes.mapper_node",
             forwarded_arguments=(("device", "device"), ("map_dir", "map_path"))),
    # After the mapper: it answers about the map the mapper saves (and asks it to save).
    NodeSpec(name="llm3d_reasoner", executable="llm3d_reasoner", module="llm3d_ros.nodes.reasoner_node",
             forwarded_arguments=(("device", "device"), ("map_dir", "map_dir"))),
)

# Bringup arguments shared by `ros2 launch llm3d bringup.launch.py` and `llm3d bringup`:
# name -> (default, description). An empty default means "as in the parameter file".
ARGUMENTS: dict[str, tuple[str, str]] = {
    "sim": ("false", "start the built-in simulator instead of robot sensors"),
    "device": ("", "auto | cpu | cuda | cuda:N; empty: as in the parameter file"),
    "camera": ("", "camera profile of launch/cameras (realsense_d4xx, azure_kinect, oakd, sim) or a YAML "
                   "overlay file; empty: the parameter file's topics"),
    "map_dir": ("", "map folder the mapper saves and resumes and the reasoner answers about; empty: as in the "
                    "parameter file"),
    "namespace": ("", "namespace of every node, topic, service and TF of this stack (several robots on one "
                      "domain); empty: none"),
    "respawn_delay": ("2.0", "seconds before a node that died is started again (the mapper resumes its map)"),
}


def select_nodes(sim: bool) -> list[NodeSpec]:
    """The nodes to start with or without the simulator."""
    wanted = {"always", "sim" if sim else "robot"}
    return [spec for spec in NODES if spec.when in wanted]


def forwarded_parameters(spec: NodeSpec, arguments: dict[str, str]) -> dict[str, str]:
    """The bringup arguments this node takes as parameter overrides, keyed by parameter name."""
    # An empty value means "not given": the parameter file's value stands.
    return {parameter: arguments[argument] for argument, parameter in spec.forwarded_arguments
            if arguments.get(argument)}


def normalize_namespace(namespace: str) -> str:
    """'robot1', '/robot1/' -> '/robot1'; '' or '/' -> ''. Raises ValueError for a name ROS refuses."""
    parts = [part for part in namespace.strip().split("/") if part]
    for part in parts:
        if not (part[0].isalpha() or part[0] == "_") or not all(c.isalnum() or c == "_" for c in part):
            raise ValueError(f"namespace {namespace!r}: each part must start with a letter or '_' and hold only "
                             "letters, digits and '_'")
    return "/" + "/".join(parts) if parts else ""


def parameter_files(params_file: Path, camera: str, namespace: str, out_dir: Path) -> list[Path]:
    """The parameter files of a bringup, in order (later files override earlier ones).

    `camera` adds the profile's overlay (launch/cameras/<name>.yaml, or a YAML path). With a
    namespace, each file is rewritten into `out_dir` with its node sections keyed by the fully
    qualified node name (`/robot1/llm3d_mapper`), as Nav2's RewrittenYaml does: ROS matches a
    bare `llm3d_mapper:` section only to a node at the root namespace.
    """
    files = [Path(params_file)]
    if camera:
        from llm3d_core.camera_profiles import profile_parameter_file

        files.append(profile_parameter_file(camera))
    namespace = normalize_namespace(namespace)
    if not namespace:
        return files
    out_dir.mkdir(parents=True, exist_ok=True)
    rewritten = []
    for i, path in enumerate(files):
        data = yaml.safe_load(Path(path).read_text()) or {}
        keyed = {(key if str(key).startswith("/") else f"{namespace}/{key}"): value for key, value in data.items()}
        target = out_dir / f"{i}_{Path(path).name}"
        target.write_text(yaml.safe_dump(keyed, sort_keys=False))
        rewritten.append(target)
    return rewritten


def node_command(module: str, name: str, params_files: list[Path], parameters: dict[str, str],
                 remappings: tuple[tuple[str, str], ...] = (), namespace: str = "") -> list[str]:
    """The command line of one node process (ROS arguments as `ros2 run` would pass them)."""
    cmd = [sys.executable, "-m", module, "--ros-args", "-r", f"__node:={name}"]
    if namespace:
        cmd += ["-r", f"__ns:={namespace}"]
    for params_file in params_files:
        cmd += ["--params-file", str(params_file)]
    for key, value in parameters.items():
        cmd += ["-p", f"{key}:={value}"]
    for src, dst in remappings:
        cmd += ["-r", f"{src}:={dst}"]
    return cmd
