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


def test_bringup_arguments_map_onto_parameters_the_same_way_for_both_launchers():
    from llm3d_ros.node_set import ARGUMENTS

    assert {"sim", "device", "camera", "map_dir", "namespace"} <= set(ARGUMENTS)
    mapper = next(s for s in NODES if s.name == "llm3d_mapper")
    reasoner = next(s for s in NODES if s.name == "llm3d_reasoner")
    given = {"device": "cpu", "map_dir": "/maps/robot1"}
    assert forwarded_parameters(mapper, given) == {"device": "cpu", "map_path": "/maps/robot1"}
    assert forwarded_parameters(reasoner, given) == {"device": "cpu", "map_dir": "/maps/robot1"}
    # Nav2's multi-robot convention: TF is remapped to the stack's namespace on every node.
    assert all(("/tf", "tf") in s.remappings and ("/tf_static", "tf_static") in s.remappings for s in NODES)


def test_namespaces_are_normalised_and_invalid_ones_refused():
    import pytest

    from llm3d_ros.node_set import normalize_namespace

    assert normalize_namespace("") == normalize_namespace("/") == ""
    assert normalize_namespace("robot1") == normalize_namespace("/robot1/") == "/robot1"
    assert normalize_namespace("fleet/robot_2") == "/fleet/robot_2"
    for bad in ("1robot", "robot-1", "ro bot"):
        with pytest.raises(ValueError, match="namespace"):
            normalize_namespace(bad)


def test_namespaced_parameter_files_are_keyed_by_the_full_node_name(tmp_path):
    """ROS applies a bare `llm3d_mapper:` section only to a root-namespace node; with a namespace the
    files are rewritten as Nav2's RewrittenYaml does, values unchanged."""
    import yaml

    from llm3d_core.config import DEFAULT_CONFIG
    from llm3d_ros.node_set import parameter_files

    assert parameter_files(DEFAULT_CONFIG, "", "", tmp_path / "out") == [DEFAULT_CONFIG]
    assert not (tmp_path / "out").exists()
    files = parameter_files(DEFAULT_CONFIG, "", "robot1", tmp_path / "out")
    original = yaml.safe_load(DEFAULT_CONFIG.read_text())
    rewritten = yaml.safe_load(files[0].read_text())
    assert set(rewritten) == {f"/robot1/{key}" for key in original}
    assert rewritten["/robot1/llm3d_mapper"] == original["llm3d_mapper"]


def test_bringup_refuses_a_bad_namespace_in_one_line(capsys):
    from llm3d_cli.main import main as llm3d_main

    assert llm3d_main(["bringup", "--namespace", "robot-1"]) == 2
    err = capsys.readouterr().err
    assert "namespace" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
