"""Every `llm3d` subcommand turns a user mistake into one line on stderr and exit status 2, no traceback.

Each case runs the real CLI in a subprocess (`python -m llm3d_cli.main`) with a mistake a user makes:
a path that does not exist, a corrupt file, a number out of range, an invalid choice, an empty query,
a config key that does not exist. Every mistake is found before a model loads, a scene is mapped or a
ROS node starts, so the cases take seconds. `{tmp}` is a folder of prepared bad inputs (see `bad_inputs`),
`{frames}` the real 7-Scenes folder.
"""

from __future__ import annotations

import subprocess

import pytest

from llm3d_cli import usage

CASES = [
    # top level
    (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    (["sim", "render", "--seed", "1", "--out", "{tmp}/o", "--frobnicate"],
     "unrecognized arguments: --frobnicate"),
    # sim render | explore
    (["sim", "render", "--seed", "900001", "--out", "{tmp}/o"], "argument --seed: seed 900001 is outside every split"),
    (["sim", "render", "--seed", "1", "--out", "{tmp}/o", "--views", "-3"], "argument --views: must be an integer >= 1"),
    (["sim", "render", "--seed", "1", "--out", "{tmp}/o", "--width", "0"], "argument --width: must be an integer >= 1"),
    (["sim", "render", "--out", "{tmp}/o"], "give exactly one of --seed or --scene"),
    (["sim", "render", "--scene", "{tmp}/missing.json", "--out", "{tmp}/o"], "argument --scene: no such file"),
    (["sim", "render", "--scene", "{tmp}/junk.bin", "--out", "{tmp}/o"], "junk.bin is not a readable mesh"),
    (["sim", "render", "--seed", "1", "--out", "{tmp}/o", "--config", "{tmp}/missing.yaml"], "config file not found"),
    (["sim", "render", "--seed", "1", "--out", "{tmp}/o", "--config", "{tmp}/bad.yaml"],
     "bad.yaml is not valid YAML (line 2, column 1)"),
    (["sim", "render", "--seed", "1", "--out", "{tmp}/o", "--config", "{tmp}/junk.bin"], "is not a YAML text file"),
    (["sim", "render", "--seed", "1", "--out", "{tmp}/o", "--config", "{tmp}/unknown_key.yaml"],
     "unknown config key(s) llm3d_sim_bridge.sim.render.bogus_key"),
    (["sim", "render", "--seed", "1", "--out", "{tmp}/junk.bin", "--views", "1"], "File exists: "),
    (["sim", "explore", "--seed", "1", "--out", "{tmp}/o", "--max-steps", "-1"], "argument --max-steps"),
    (["sim", "explore", "--seed", "1", "--out", "{tmp}/o", "--backend", "vulkan"], "argument --backend: invalid choice"),
    # data generate | views
    (["data", "generate", "--split", "nope", "--scenes", "1", "--out", "{tmp}/d"], "argument --split: invalid choice"),
    (["data", "generate", "--split", "train", "--scenes", "0", "--out", "{tmp}/d"], "argument --scenes"),
    (["data", "generate", "--split", "val", "--scenes", "5000", "--out", "{tmp}/d"], "split 'val' has 1000 seeds"),
    (["data", "generate", "--split", "train", "--scenes", "1", "--out", "{tmp}/d", "--tasks", "juggle"],
     "tasks must be among"),
    (["data", "views", "--data", "{tmp}/missing", "--split", "train"], "train.jsonl not found"),
    (["data", "views", "--data", "{tmp}/empty", "--split", "train", "--views-per-scene", "0"],
     "argument --views-per-scene"),
    # bag record-sim | from-frames | play | info
    (["bag", "info", "{tmp}/missing"], "bag not found"),
    (["bag", "info", "{tmp}/junk.bin"], "junk.bin cannot be opened"),
    (["bag", "info", "{tmp}/empty", "--config", "{tmp}/bad.yaml"], "is not valid YAML"),
    (["bag", "play", "{tmp}/missing"], "bag not found"),
    (["bag", "play", "{tmp}/missing", "--rate", "0"], "argument --rate: must be a number > 0"),
    (["bag", "record-sim", "--seed", "900001", "--out", "{tmp}/b"], "argument --seed: seed 900001"),
    (["bag", "record-sim", "--seed", "1", "--out", "{tmp}/empty"], "argument --out: {tmp}/empty exists already"),
    (["bag", "from-frames", "{tmp}/missing", "--out", "{tmp}/b"], "argument frames: no such frame folder"),
    (["bag", "from-frames", "{tmp}/empty", "--out", "{tmp}/b", "--every", "0"], "argument --every"),
    # map
    (["map", "--out", "{tmp}/m"], "one of the arguments --frames --bag is required"),
    (["map", "--frames", "{tmp}/missing", "--out", "{tmp}/m"], "frame folder not found"),
    (["map", "--bag", "{tmp}/junk.bin", "--out", "{tmp}/m"], "junk.bin cannot be opened"),
    (["map", "--frames", "{tmp}/empty", "--out", "{tmp}/m", "--every", "0"], "argument --every"),
    (["map", "--frames", "{tmp}/empty", "--out", "{tmp}/m", "--query", " "], "argument --query: must not be empty"),
    (["map", "--frames", "{tmp}/empty", "--out", "{tmp}/m", "--device", "gpu"], "argument --device"),
    # ask (offline; the stack path only up to its argument checks)
    (["ask", "what is here?", "--map", "{tmp}/missing"], "argument --map: no saved map"),
    (["ask", "what is here?", "--frames", "{tmp}/missing"], "frame folder not found"),
    (["ask", "what is here?", "--frames", "{frames}", "--index", "100000"], "argument --index: 100000 is outside"),
    (["ask", "what is here?", "--frames", "{tmp}/empty", "--index", "-1"], "argument --index"),
    (["ask", "what is here?", "--map", "{tmp}/map", "--frames", "{tmp}/empty"], "not both"),
    (["ask", "what is here?", "--map", "{tmp}/map", "--ckpt", "{tmp}/empty"], "is not an llm3d checkpoint"),
    (["ask", "what is here?", "--map", "{tmp}/map", "--ckpt", "{tmp}/bad_ckpt"], "config.json is corrupt"),
    (["ask", ""], "the question is empty"),
    (["ask", "the chair", "--task", "ground"], "need --map"),
    (["ask", "what is here?", "--server-timeout", "-1"], "argument --server-timeout"),
    (["ask", "what is here?", "--task", "poem"], "argument --task: invalid choice"),
    # ground, plan, navigate (running stack: refused before a ROS client starts)
    (["ground", ""], "argument query: must not be empty"),
    (["ground", "the mug", "--max-results", "-1"], "argument --max-results"),
    (["ground", "the mug", "--server-timeout", "-1"], "argument --server-timeout: must be a number > 0"),
    (["plan", "  "], "argument instruction: must not be empty"),
    (["plan", "make coffee", "--timeout", "0"], "argument --timeout: must be a number > 0"),
    (["navigate", ""], "argument instruction: must not be empty"),
    (["navigate", "go to the sofa", "--success-distance", "-1"], "argument --success-distance"),
    # graft
    (["graft", "--heads", "{tmp}/missing", "--trunk", "{tmp}/bad_ckpt", "--out", "{tmp}/g"],
     "argument --heads: {tmp}/missing is not an llm3d checkpoint"),
    (["graft", "--heads", "{tmp}/bad_ckpt", "--trunk", "{tmp}/bad_ckpt", "--out", "{tmp}/g"], "config.json is corrupt"),
    (["graft", "--heads", "{tmp}/bad_ckpt", "--trunk", "{tmp}/bad_ckpt", "--out", "{tmp}/bad_ckpt"],
     "argument --out: {tmp}/bad_ckpt already holds a checkpoint"),
    # train
    (["train", "--out", "{tmp}/t"], "one of the arguments --data --bags is required"),
    (["train", "--data", "{tmp}/missing", "--out", "{tmp}/t"], "argument --data: no such data folder"),
    (["train", "--bags", "{tmp}/missing", "--out", "{tmp}/t"], "argument --bags: no such bag folder"),
    (["train", "--data", "{tmp}/empty", "--out", "{tmp}/t"], "no data file {tmp}/empty/train.jsonl"),
    (["train", "--data", "{tmp}/empty", "--out", "{tmp}/t", "--max-steps", "-1"], "argument --max-steps"),
    (["train", "--data", "{tmp}/empty", "--out", "{tmp}/t", "--lr", "0"], "argument --lr"),
    (["train", "--data", "{tmp}/empty", "--out", "{tmp}/t", "--config", "{tmp}/bad.yaml"], "is not valid YAML"),
    # eval
    (["eval", "--data", "{tmp}/missing", "--ckpt", "{tmp}/bad_ckpt"], "no data file {tmp}/missing/val.jsonl"),
    (["eval", "--data", "{tmp}/data", "--ckpt", "{tmp}/missing"], "argument --ckpt: {tmp}/missing is not an llm3d"),
    (["eval", "--data", "{tmp}/data", "--ckpt", "{tmp}/bad_ckpt"], "config.json is corrupt"),
    (["eval", "--data", "{tmp}/data", "--ckpt", "{tmp}/bad_ckpt", "--task", "juggle"],
     "argument --task: invalid choice"),
    (["eval", "--data", "{tmp}/data", "--ckpt", "{tmp}/bad_ckpt", "--limit", "-1"], "argument --limit"),
    (["eval", "--data", "{tmp}/data", "--ckpt", "{tmp}/bad_ckpt", "--out", "{tmp}/junk.bin/eval.json"],
     "argument --out: cannot write {tmp}/junk.bin/eval.json"),
    (["eval", "--data", "{tmp}/data", "--ckpt", "{tmp}/bad_ckpt", "--out", "{tmp}/empty"], "{tmp}/empty is a folder"),
    # bench
    (["bench", "juggle"], "argument what: invalid choice"),
    (["bench", "render", "--seed", "900001", "--out", "{tmp}/bench"], "argument --seed: seed 900001"),
    (["bench", "render", "--frames-count", "-1", "--out", "{tmp}/bench"], "argument --frames-count"),
    (["bench", "mapper", "--frames", "{tmp}/missing", "--out", "{tmp}/bench"],
     "argument --frames: no such frame folder"),
    (["bench", "mapper", "--voxel", "-0.1", "--out", "{tmp}/bench"], "argument --voxel: must be a number > 0"),
    (["bench", "reasoner", "--ckpt", "{tmp}/missing", "--out", "{tmp}/bench"], "argument --ckpt"),
    (["bench", "reasoner", "--map", "{tmp}/missing", "--out", "{tmp}/bench"], "argument --map: no saved map"),
    (["bench", "embodied", "--episodes", "0", "--out", "{tmp}/bench"], "argument --episodes"),
    (["bench", "embodied", "--ckpt-2d", "{tmp}/empty", "--out", "{tmp}/bench"], "argument --ckpt-2d"),
    (["bench", "refusal", "--quick", "--full", "--out", "{tmp}/bench"], "--quick and --full are two sizes"),
    (["bench", "refusal", "--episodes", "0", "--out", "{tmp}/bench"], "argument --episodes"),
    (["bench", "ros", "--config", "{tmp}/missing.yaml", "--out", "{tmp}/bench"], "parameter file not found"),
    (["bench", "ros", "--seconds", "-1", "--out", "{tmp}/bench"], "argument --seconds"),
    # demo
    (["demo", "--scene-index", "-1", "--out", "{tmp}/demo"], "argument --scene-index"),
    (["demo", "--scene-index", "5000", "--out", "{tmp}/demo"],
     "argument --scene-index: split 'test' has 1000 seeds"),
    (["demo", "--split", "holdout", "--out", "{tmp}/demo"], "argument --split: invalid choice"),
    (["demo", "--device", "tpu", "--out", "{tmp}/demo"], "argument --device: must be auto, cpu, cuda or cuda:N"),
    # doctor, bringup (nothing starts)
    (["doctor", "--skip", "everything"], "argument --skip: invalid choice"),
    (["doctor", "--camera", "kinect1"], "argument --camera: unknown camera profile 'kinect1'; known profiles:"),
    (["doctor", "--camera", "{tmp}/bad.yaml"], "bad.yaml is not valid YAML"),
    (["doctor", "--camera", "sim", "--timeout", "0"], "argument --timeout: must be a number > 0"),
    (["doctor", "--camera", "sim", "--namespace", "1robot"], "argument --namespace: namespace '1robot'"),
    (["bringup", "--params-file", "{tmp}/missing.yaml"], "parameter file not found"),
    (["bringup", "--sim", "--device", "cuda:x"], "argument --device"),
    (["bringup", "--params-file", "{tmp}/bad.yaml"], "bad.yaml is not valid YAML (line 2, column 1)"),
    (["bringup", "--respawn-delay", "-1"], "argument --respawn-delay: must be a number >= 0"),
    (["bringup", "--max-respawns", "-2"], "argument --max-respawns: must be an integer >= 0"),
    (["plan", "make coffee", "--server-timeout", "0"], "argument --server-timeout: must be a number > 0"),
    # snapshot (refused before it listens)
    (["snapshot", "--namespace", "1robot"], "argument --namespace: namespace '1robot'"),
    (["snapshot", "--out", "{tmp}/missing/x.png"], "argument --out: no such folder: {tmp}/missing"),
    (["snapshot", "--out", "{tmp}/picture.jpg"], "argument --out: must name a .png file"),
    (["snapshot", "--out", "{tmp}/empty"], "argument --out: must name a .png file"),
    (["snapshot", "--params-file", "{tmp}/missing.yaml"], "argument --params-file: no such file"),
    (["snapshot", "--seconds", "0"], "argument --seconds: must be a number > 0"),
]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """The inputs a user gets wrong: garbage files, an empty folder, a corrupt checkpoint, a bad config."""
    tmp = tmp_path_factory.mktemp("bad_inputs")
    (tmp / "empty").mkdir()
    (tmp / "junk.bin").write_bytes(bytes(range(256)) * 4)
    (tmp / "bad.yaml").write_text("llm3d_mapper: [\n")
    (tmp / "unknown_key.yaml").write_text("llm3d_sim_bridge:\n  ros__parameters:\n    sim:\n      render:\n"
                                          "        bogus_key: 1\n")
    (tmp / "bad_ckpt").mkdir()
    (tmp / "bad_ckpt" / "config.json").write_text("{not json")
    (tmp / "bad_ckpt" / "model.safetensors").write_bytes(b"junk")
    (tmp / "data").mkdir()
    (tmp / "data" / "val.jsonl").write_text("")
    (tmp / "map").mkdir()
    (tmp / "map" / "map.json").write_text("{}")
    return tmp


def _expand(arg: str, tmp, frames) -> str:
    return arg.replace("{tmp}", str(tmp)).replace("{frames}", str(frames))


@pytest.mark.parametrize("argv, fragment", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_user_mistake_is_one_line_and_exit_2(argv, fragment, bad_inputs, python_exe, request):
    frames = request.getfixturevalue("seven_scenes") if any("{frames}" in a for a in argv) else None
    argv = [_expand(a, bad_inputs, frames) for a in argv]
    out = subprocess.run([python_exe, "-m", "llm3d_cli.main", *argv], capture_output=True, text=True, timeout=120,
                         cwd=bad_inputs)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == 2, out.stderr[-3000:]
    assert len(lines) == 1, out.stderr[-3000:]
    assert lines[0].startswith("llm3d") and _expand(fragment, bad_inputs, frames) in lines[0], lines[0]
    assert out.stdout == ""


def test_verbose_shows_the_traceback_of_a_user_error(bad_inputs, python_exe):
    out = subprocess.run([python_exe, "-m", "llm3d_cli.main", "-v", "sim", "render", "--out", str(bad_inputs / "o")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" in out.stderr
    assert out.stderr.splitlines()[-1] == "llm3d sim render: error: give exactly one of --seed or --scene"


def _run_raising(monkeypatch, err: BaseException):
    """`llm3d plan` replaced by a command that raises `err` from this (non-project) module."""
    from llm3d_cli.main import main
    from llm3d_cli.registry import COMMANDS, Command

    def run(args):
        raise err

    monkeypatch.setitem(COMMANDS, "plan", Command("plan", "test", COMMANDS["plan"].add_args, run))
    return main(["plan", "make coffee"])


@pytest.mark.parametrize("err", [ValueError("negative dimensions are not allowed"), KeyError("slot"),
                                 RuntimeError("CUDA error"), TypeError("unsupported operand")])
def test_an_internal_error_keeps_its_traceback(monkeypatch, err):
    """A bug is not a user error: a ValueError raised outside the project's code (here, as from inside numpy)
    and any other exception type propagate, so Python prints the traceback and exits 1."""
    with pytest.raises(type(err)):
        _run_raising(monkeypatch, err)


def test_project_errors_are_user_errors(monkeypatch, capsys):
    from llm3d_core.config import ConfigError, require_positive

    assert _run_raising(monkeypatch, ConfigError("unknown config key(s) x\n  (see the file)")) == 2
    assert capsys.readouterr().err == "llm3d plan: error: unknown config key(s) x (see the file)\n"
    try:
        require_positive("voxel_size", -1.0)  # a ValueError raised by the project's own code
    except ValueError as err:
        assert _run_raising(monkeypatch, err) == 2
    assert capsys.readouterr().err == "llm3d plan: error: voxel_size must be a finite number > 0, got -1.0\n"
    assert _run_raising(monkeypatch, FileNotFoundError(2, "No such file or directory", "/nowhere")) == 2
    assert capsys.readouterr().err == "llm3d plan: error: No such file or directory: /nowhere\n"


def test_the_user_error_types_exist():
    """USER_ERROR_TYPES names classes by string (nothing imported to report an error): each one must resolve."""
    import importlib

    for name in usage.USER_ERROR_TYPES:
        module, _, cls = name.rpartition(".")
        found = getattr(importlib.import_module(module), cls)
        assert issubclass(found, Exception), name
        # Matched by the class's own module: a name that only re-exports it would never match.
        assert f"{found.__module__}.{found.__qualname__}" == name, name


def test_cli_copies_of_choices_match_their_sources():
    from llm3d_cli.data_cmd import SPLITS
    from llm3d_cli.eval_cmd import TASKS
    from llm3d_core.model.configuration_llm3d import TASKS as MODEL_TASKS
    from sim.scenes import SPLITS as SIM_SPLITS

    assert SPLITS == tuple(SIM_SPLITS) and set(TASKS) == set(MODEL_TASKS)
