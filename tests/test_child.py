"""Ending a child process: SIGTERM, and SIGKILL for one that does not end within its grace."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from scanner.child import end


def test_a_child_that_ends_on_sigterm_is_not_killed() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert end(proc, 10.0) == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed_after_its_grace() -> None:
    code = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    began = time.monotonic()
    assert end(proc, 0.5) == -signal.SIGKILL
    assert time.monotonic() - began >= 0.5
    proc.stdout.close()


def test_a_child_that_ended_already_gives_its_code() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    assert end(proc) == 3
