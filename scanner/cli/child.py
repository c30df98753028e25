"""Running ``gate`` itself as a child process, as the demo and the sync benchmark do."""

from __future__ import annotations

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
