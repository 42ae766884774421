"""A command in a child process with its merged output collected line by line, stopped like Ctrl-C.

The ROS benchmark runs its nodes this way, and the ROS tests their bringup and node processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import deque
from pathlib import Path


class ChildProcess:
    """`cmd` as a child process.

    max_lines: keep only the last lines of output (None: all of it). new_session: start it in its
    own session, so that a Ctrl-C in the terminal reaches only the parent, which stops it in order.
    """

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None, name: str = "",
                 max_lines: int | None = None, new_session: bool = False) -> None:
        self.name = name or Path(cmd[0]).name
        self.proc = subprocess.Popen(cmd, env=env if env is not None else dict(os.environ), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=new_session)
        self.lines: deque[str] = deque(maxlen=max_lines)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def memory_gb(self) -> dict[str, float]:
        """Peak (VmHWM) and current (VmRSS) resident memory of the process, in GB."""
        memory = process_memory_gb(self.proc.pid)
        return {k: memory[k] for k in ("peak_gb", "rss_gb") if k in memory}

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGINT (a clean rclpy shutdown, like Ctrl-C), SIGKILL if it has not exited after timeout_s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5.0)
        return self.proc.returncode


_STATUS_KEYS = {"VmHWM": "peak_gb", "VmRSS": "rss_gb", "RssAnon": "private_gb"}


def process_memory_gb(pid: int) -> dict[str, float]:
    """Resident memory of process `pid` in GB from /proc: peak (VmHWM), current (VmRSS) and private
    (RssAnon: without pages mapped from files, such as shared libraries or memory-mapped weights,
    which the kernel can reclaim); empty when the process is gone or not on Linux."""
    values: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in _STATUS_KEYS:
                values[_STATUS_KEYS[key]] = round(int(rest.split()[0]) * 1024 / 1e9, 3)
    except OSError:  # not on Linux, or already gone
        pass
    return values
