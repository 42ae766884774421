"""`llm3d bringup`: start the llm3d nodes without `ros2 launch`.

Where `launch`/`launch_ros` are not installable (pip-only ROS 2, as on this machine), this starts
the same node set as launch/bringup.launch.py (both read `llm3d_ros.node_set`), each node as a
child process:

    python -m <module> --ros-args -r __node:=<name> --params-file <file> [-p <arg>:=<value>] [-r a:=b]

with the ROS environment of `llm3d_ros.env.ros_environment()`. Output lines are prefixed with the
node name. Ctrl-C or SIGTERM stops every node (SIGINT, a grace period, then SIGKILL).

Respawn (launch_ros's `respawn=True, respawn_delay=...`): a node that dies on its own (a crash, a
kill -9, the OOM killer) is started again after --respawn-delay seconds, the others keep serving;
the restarted mapper resumes its saved map (`resume`) and the reasoner reloads it. A node that
exits with code 2 (invalid parameters: it would fail again) or has died --max-respawns times
stops the others and makes the exit code non-zero.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from llm3d_cli.registry import command
from llm3d_cli.usage import UsageError, non_negative_float, non_negative_int

STOP_GRACE_S = 15.0  # a node flushes and saves on SIGINT; give it time before SIGKILL
STACK_DUMP_S = 1.0  # after SIGUSR1 to a node that outlived the grace period: time to print its stacks
CONFIG_ERROR = 2  # a node's exit code for invalid parameters: restarting it cannot help


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sim", action="store_true", help="start the built-in simulator instead of robot sensors")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N, forwarded to nodes that take it")
    p.add_argument("--params-file", type=Path, default=None,
                   help="YAML parameter file shared by the nodes and the CLI (default: launch/llm3d.yaml)")
    p.add_argument("--camera", default="", metavar="PROFILE",
                   help="camera profile of launch/cameras (realsense_d4xx, azure_kinect, oakd, sim) or a YAML overlay; "
                        "`llm3d doctor --camera PROFILE` checks the driver first")
    p.add_argument("--map-dir", default="", metavar="DIR",
                   help="map folder the mapper saves/resumes and the reasoner answers about (default: parameter file)")
    p.add_argument("--namespace", default="",
                   help="namespace of every node, topic, service and TF of this stack, e.g. robot1 (default: none)")
    p.add_argument("--respawn-delay", type=non_negative_float, default=2.0, metavar="S",
                   help="seconds before a node that died is started again (default 2)")
    p.add_argument("--max-respawns", type=non_negative_int, default=5, metavar="N",
                   help="restarts per node before bringup gives up and stops (default 5; 0: never restart)")


def _forward_output(name: str, stream, lock: threading.Lock) -> None:
    for line in iter(stream.readline, ""):
        with lock:
            sys.stdout.write(f"[{name}] {line}" if line.endswith("\n") else f"[{name}] {line}\n")
            sys.stdout.flush()
    stream.close()


def _stop_all(procs: dict[str, subprocess.Popen], grace_s: float = STOP_GRACE_S) -> None:
    """SIGINT to every running node (a clean rclpy shutdown), then SIGKILL whatever outlives grace_s."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for name, proc in procs.items():
        try:
            proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            print(f"llm3d bringup: {name} did not stop within {grace_s:.0f} s; its threads' stacks follow; "
                  "killing it", file=sys.stderr, flush=True)
            if hasattr(signal, "SIGUSR1"):
                proc.send_signal(signal.SIGUSR1)  # the node's faulthandler prints where each thread waits
                try:
                    proc.wait(STACK_DUMP_S)
                except subprocess.TimeoutExpired:
                    pass
            proc.kill()
            proc.wait()


@command("bringup", "start the llm3d ROS 2 nodes (the node set of bringup.launch.py) until Ctrl-C", _add_args)
def run(args: argparse.Namespace) -> int:
    from llm3d_core.config import DEFAULT_CONFIG, load_yaml
    from llm3d_ros.env import ros_environment
    from llm3d_ros.node_set import (forwarded_parameters, node_command, normalize_namespace, parameter_files,
                                    select_nodes)

    specs = select_nodes(args.sim)
    if args.sim and not any(spec.name == "llm3d_sim_bridge" for spec in specs):
        # A node set edited without the simulator would start a mapper that waits for a camera forever.
        print("llm3d bringup --sim: the simulator bridge node (llm3d_sim_bridge) is not in the node set "
              "(llm3d_ros.node_set.NODES); run without --sim and feed camera topics and TF from a robot or a bag",
              file=sys.stderr)
        return 2
    if not specs:
        print("llm3d bringup: the node set is empty; nothing to start", file=sys.stderr)
        return 2
    params_file = (args.params_file or DEFAULT_CONFIG).expanduser().resolve()
    if not params_file.is_file():
        raise UsageError(f"argument --params-file: parameter file not found: {params_file}")
    load_yaml(params_file)  # malformed YAML: one line now, not a node dying after start-up
    try:
        namespace = normalize_namespace(args.namespace)
        files = parameter_files(params_file, args.camera, namespace, Path(tempfile.gettempdir()) / f"llm3d_bringup_{os.getpid()}")
    except ValueError as err:  # unknown camera profile, bad namespace
        raise UsageError(str(err)) from err
    for extra in files[1:]:
        load_yaml(extra)
    arguments = {"sim": "true" if args.sim else "false", "device": args.device or "",
                 "map_dir": str(Path(args.map_dir).expanduser().resolve()) if args.map_dir else ""}

    env = ros_environment()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs: dict[str, subprocess.Popen] = {}
    lock = threading.Lock()
    readers = []
    commands = {spec.name: node_command(spec.module, spec.name, files, forwarded_parameters(spec, arguments),
                                        spec.remappings, namespace) for spec in specs}

    def start(name: str) -> None:
        # Own session: a terminal's Ctrl-C reaches only us, and we stop the nodes in order.
        proc = subprocess.Popen(commands[name], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1, start_new_session=True)
        procs[name] = proc
        reader = threading.Thread(target=_forward_output, args=(name, proc.stdout, lock), daemon=True)
        reader.start()
        readers.append(reader)
        with lock:
            print(f"llm3d bringup: started {name} (pid {proc.pid})", flush=True)

    respawns = dict.fromkeys(commands, 0)
    restart_at: dict[str, float] = {}  # dead nodes waiting for their respawn delay
    try:
        for spec in specs:
            start(spec.name)
        with lock:
            where = f" in namespace {namespace}" if namespace else ""
            print(f"llm3d bringup: {len(procs)} node(s) running{where} with {', '.join(map(str, files))}; "
                  "Ctrl-C stops them", flush=True)
        while not stop.wait(0.2):
            for name, proc in procs.items():
                code = proc.poll()
                if code is None or name in restart_at:
                    continue
                if code == CONFIG_ERROR or respawns[name] >= args.max_respawns:
                    why = ("invalid parameters" if code == CONFIG_ERROR else
                           f"restarted {respawns[name]} time(s) already (--max-respawns)")
                    print(f"llm3d bringup: {name} exited unexpectedly with code {code} ({why}); stopping the others",
                          file=sys.stderr, flush=True)
                    return 1
                respawns[name] += 1
                restart_at[name] = time.monotonic() + args.respawn_delay
                print(f"llm3d bringup: {name} exited unexpectedly with code {code}; restarting it in "
                      f"{args.respawn_delay:g} s (respawn {respawns[name]} of {args.max_respawns}); the other nodes "
                      "keep running", file=sys.stderr, flush=True)
            for name, when in list(restart_at.items()):
                if time.monotonic() >= when:
                    del restart_at[name]
                    start(name)
        with lock:
            print("llm3d bringup: stopping", flush=True)
        return 0
    finally:
        _stop_all(procs)
        for reader in readers:
            reader.join(timeout=2.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        codes = {name: proc.returncode for name, proc in procs.items()}
        if any(code not in (0, None) for code in codes.values()):
            print(f"llm3d bringup: exit codes {codes}", file=sys.stderr, flush=True)
