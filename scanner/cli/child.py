"""Running ``gate`` itself as a child process, as the demo and the sync benchmark do."""

from __future__ import annotations

import contextlib
import os
import sys


def gate_argv(*args: str) -> list[str]:
    """The command line of ``gate ARGS`` with this interpreter, whether installed or not."""
    return [sys.executable, "-m", "scanner.cli.main", *args]


def gate_env(**overrides: str) -> dict[str, str]:
    """This process's environment without its GATE_* settings, plus ``overrides``: the child
    sees only the configuration it is given, never the operator's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    env.update(overrides)
    return env


def as_remote(pid: int) -> None:
    """Run the child ``pid``, which stands for a remote server (the simulator), at idle
    priority: on this machine it takes only the CPU the gate leaves, as vivenu's servers
    take none of a gate's. Benchmarks that time the gate under a sync rely on it."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or a filter refuses it
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
