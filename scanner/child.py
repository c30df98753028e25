"""Starting a child process of this gate: ``gate`` itself (the demo, the benchmarks) or the sync
process's child, with an environment that carries none of the operator's settings."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import Any


def gate_argv(*args: str) -> list[str]:
    """The command line of ``gate ARGS`` with this interpreter, whether installed or not."""
    return [sys.executable, "-m", "scanner.cli.main", *args]


# What systemd hands the process it started: the notify socket, the watchdog armed for it,
# sockets passed to it. Only that process may speak to systemd: a child's READY=1 or
# STATUS= would be taken for the daemon's.
SYSTEMD_ENV = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                         "LISTEN_PID", "LISTEN_FDNAMES"})


def gate_env(**overrides: str) -> dict[str, str]:
    """This process's environment without its GATE_* settings and systemd's notify and
    watchdog variables, plus ``overrides``: the child sees only the configuration it is
    given, never the operator's own, and never speaks to systemd for the daemon."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GATE_") and k not in SYSTEMD_ENV}
    env.update(overrides)
    return env


def as_remote(pid: int) -> None:
    """Run the child ``pid``, which stands for a remote server (the simulator), at idle
    priority: on this machine it takes only the CPU the gate leaves, as vivenu's servers
    take none of a gate's. Benchmarks that time the gate under a sync rely on it."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or a filter refuses it
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


def end(proc: subprocess.Popen[Any], grace: float = 10.0) -> int:
    """Stop a child: SIGTERM, then SIGKILL if it has not ended within ``grace`` seconds (a
    child at idle priority on a busy machine may not even run its handler); its exit code."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
