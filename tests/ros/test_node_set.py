"""The single node definition behind `ros2 launch` and `llm3d bringup`."""

import ast
import importlib
from importlib import metadata
from pathlib import Path

from llm3d_ros.node_set import NODES, forwarded_parameters, select_nodes

REPO = Path(__file__).resolve().parents[2]


def test_every_node_is_an_installed_console_script_with_a_main():
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts") if ep.value.startswith("llm3d_ros.")}
    assert NODES, "the node set is empty"
    for spec in NODES:
        assert scripts.get(spec.executable) == f"{spec.module}:main", spec
        assert callable(importlib.import_module(spec.module).main)


def test_selection_and_forwarding():
    names_robot = [s.name for s in select_nodes(sim=False)]
    names_sim = [s.name for s in select_nodes(sim=True)]
    assert "llm3d_mapper" in names_robot and "llm3d_mapper" in names_sim
    assert all(s.when != "sim" for s in select_nodes(sim=False))
    mapper = next(s for s in NODES if s.name == "llm3d_mapper")
    assert forwarded_parameters(mapper, {"device": "cuda", "other": "x"}) == {"device": "cuda"}
    assert forwarded_parameters(mapper, {"device": ""}) == {}  # empty: the parameter file decides


def test_launch_file_builds_from_the_node_set():
    source = (REPO / "launch" / "bringup.launch.py").read_text()
    tree = ast.parse(source)  # valid Python (launch_ros itself is not installable here)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert {"select_nodes", "forwarded_parameters", "Node"} <= names
    defs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in defs
