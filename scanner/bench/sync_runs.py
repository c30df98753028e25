"""The children every sync benchmark runs: the simulator, `gate sync --once` and the plain
httpx + sqlite3 loop, each in a process of its own with its wall time, CPU and peak RSS."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from scanner.bench import plain_sync
from scanner.child import as_remote, gate_argv, gate_env
from scanner.config import DEFAULT_PAGE_SIZE, DEFAULT_READ_TIMEOUT
from scanner.errors import GateError
from scanner.sim.server import DEFAULT_TOKEN

CONTROL_TIMEOUT = 120.0  # seconds: a control request to the benchmark's own simulator
# A fresh world of a million tickets takes a moment to build before the sim listens.
SIM_START_TIMEOUT = 60.0


def _first_line(proc: subprocess.Popen[bytes], timeout: float) -> tuple[str, bool]:
    """The child's first line of stdout (up to end of output, as ``readline``) and whether
    it came within ``timeout``; waits no longer than that even if the child prints nothing."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return data.decode(errors="replace"), False
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace"), True


def start_sim(tickets: int, events: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    """``gate sim`` of ``events`` events of ``tickets`` tickets each, and its URL."""
    proc = subprocess.Popen(
        gate_argv("sim", "--port", "0", "--events", str(events), "--tickets", str(tickets)),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    as_remote(proc.pid)
    line, in_time = _first_line(proc, SIM_START_TIMEOUT)
    if "serving " not in line or not in_time:
        proc.kill()
        raise GateError(f"bench sync: the simulator did not start: {line.strip()!r}")
    url = line.split("serving ", 1)[1].split()[0]
    return proc, url


def _run_child(argv: list[str], env: dict[str, str], workdir: Path,
               what: str) -> dict[str, Any]:
    """Run ``argv`` in a child: its stdout, wall time, own CPU seconds and peak RSS."""
    out_path, err_path = workdir / "child.out", workdir / "child.err"
    started = time.monotonic()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        # wait4 reaps this child alone and returns its rusage, not the simulator's.
        _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        tail = err_path.read_text(errors="replace").strip()[-500:]
        raise GateError(f"bench sync: {what} failed: {tail}")
    return {"out": out_path.read_bytes(), "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mb": round(usage.ru_maxrss / 1024, 1)}


def run_sync(env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """One ``gate sync --once`` in a child: its report and the child's own figures."""
    run = _run_child(gate_argv("sync", "--once", "--json"), env, workdir, "gate sync")
    [run["report"]] = orjson.loads(run["out"])
    return run


def run_plain(url: str, event_id: str, workdir: Path, db: Path) -> dict[str, Any]:
    """The plain loop in a child, into its own new SQLite file; its figures."""
    argv = [sys.executable, "-m", plain_sync.__name__, url, event_id, str(db),
            str(DEFAULT_PAGE_SIZE)]
    env = gate_env(PLAIN_TOKEN=DEFAULT_TOKEN, PLAIN_READ_TIMEOUT=str(DEFAULT_READ_TIMEOUT))
    run = _run_child(argv, env, workdir, "the plain loop")
    run["tickets"] = int(run["out"].split()[0])
    return run
