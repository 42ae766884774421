"""`llm3d bringup` stopping a node that hangs on shutdown: SIGINT, the grace period, then SIGUSR1 (the
node's faulthandler prints every thread's stack, so a hang shows where it waits) and SIGKILL."""

import signal
import subprocess
import sys
import time

from llm3d_cli.bringup_cmd import _stop_all

# A stand-in for a node whose shutdown hangs: it registers the dump as run_node does and ignores SIGINT.
HANGING_NODE = """
import faulthandler, signal, sys, time
faulthandler.register(signal.SIGUSR1, all_threads=True)
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("ready", flush=True)
def wait_for_the_worker():
    while True:
        time.sleep(0.05)
wait_for_the_worker()
"""


def test_a_node_that_outlives_the_grace_period_prints_its_stacks_then_is_killed(capsys):
    proc = subprocess.Popen([sys.executable, "-c", HANGING_NODE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready"
    t0 = time.monotonic()
    _stop_all({"hanging_node": proc}, grace_s=0.5)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - t0 < 10.0
    stacks = proc.stderr.read()
    assert "wait_for_the_worker" in stacks and "most recent call first" in stacks, stacks
    assert "hanging_node did not stop within 0 s; its threads' stacks follow" in capsys.readouterr().err


def test_a_node_that_stops_on_sigint_is_not_killed():
    proc = subprocess.Popen([sys.executable, "-c", "import time\nprint('ready', flush=True)\ntime.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    _stop_all({"node": proc}, grace_s=5.0)
    assert proc.returncode not in (None, -signal.SIGKILL)  # KeyboardInterrupt ends it
