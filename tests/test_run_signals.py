"""SIGTERM and SIGINT as an event that is set however the main thread was interrupted:
a process stopped by systemd always stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from kits.waiting import wait_for

from scanner.run.signals import stop_on_signals

ROOT = Path(__file__).resolve().parents[1]

# The main thread takes the event's own lock, as Event.wait does around its wait, and the
# signal arrives there: its handler runs at the next call, still under that lock. A handler
# that set the event itself would wait for that lock for ever, and so would every later
# SIGTERM's. ``_cond`` is the lock Event.wait holds; reaching for it places the signal at
# the exact bytecode the race needs.
UNDER_THE_EVENTS_LOCK = """
import os, signal, time
from scanner.run.signals import stop_on_signals
with stop_on_signals() as stop:
    with stop._cond:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0)
    print("stopped" if stop.wait(10) else "not stopped", flush=True)
"""


def test_a_signal_arriving_while_the_main_thread_holds_the_events_lock_still_stops_it(
        ) -> None:
    proc = subprocess.Popen([sys.executable, "-c", UNDER_THE_EVENTS_LOCK], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()  # SIGTERM is what it ignores
        proc.communicate()
        raise AssertionError("the handler deadlocked on the event's lock") from None
    assert (proc.returncode, out) == (0, "stopped\n")


def test_each_signal_calls_on_stop_and_the_block_leaves_no_handler_or_pipe_behind() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    fds = set(os.listdir("/proc/self/fd"))
    calls: list[str] = []
    with stop_on_signals(signal.SIGUSR1,
                         on_stop=lambda: calls.append(threading.current_thread().name)) as stop:
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.wait(5)
        wait_for(lambda: len(calls) == 1, "on_stop")
        os.kill(os.getpid(), signal.SIGUSR1)
        wait_for(lambda: len(calls) == 2, "on_stop again")
    assert calls == ["stop-signals", "stop-signals"]  # off the main thread, as the event
    assert signal.getsignal(signal.SIGUSR1) is before
    assert set(os.listdir("/proc/self/fd")) == fds
