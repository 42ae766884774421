"""The llm3d node set, defined once.

`launch/bringup.launch.py` (machines with ROS 2 installed: `ros2 launch llm3d bringup.launch.py`)
and `llm3d bringup` (here, where `launch`/`ros2` cannot be installed) both build their node
list from `select_nodes()`, so they start the same executables with the same names,
parameters and remappings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeSpec:
    """One node of the bringup."""

    name: str  # node name, also its section in the YAML parameter file
    executable: str  # console script of package `llm3d` (`ros2 run llm3d <executable>`)
    module: str  # Python module whose `main()` runs the node (used by `llm3d bringup`)
    remappings: tuple[tuple[str, str], ...] = ()
    forwarded_arguments: tuple[str, ...] = ()  # bringup arguments passed on as parameters, e.g. device
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
             forwarded_arguments=("device",)),
    # After the mapper: it answers about the map the mapper saves (and asks it to save).
    NodeSpec(name="llm3d_reasoner", executable="llm3d_reasoner", module="llm3d_ros.nodes.reasoner_node",
             forwarded_arguments=("device",)),
)


def select_nodes(sim: bool) -> list[NodeSpec]:
    """The nodes to start with or without the simulator."""
    wanted = {"always", "sim" if sim else "robot"}
    return [spec for spec in NODES if spec.when in wanted]


def forwarded_parameters(spec: NodeSpec, arguments: dict[str, str]) -> dict[str, str]:
    """The bringup arguments this node takes as parameter overrides."""
    # An empty value means "not given": the parameter file's value stands.
    return {name: arguments[name] for name in spec.forwarded_arguments if arguments.get(name)}
