"""``gate bench sync``'s two-event round: a second event's first full sync on a gate that
already serves one, and the decisions for the first event beside it.

The simulator serves two events of N tickets each. The first event's full sync runs alone
(``gate sync --once``); then the second event's first full sync runs in its own child while
this process checks the first event's tickets through the gate's ``Gatekeeper.check``
(store lookup, decision, fsync'd journal write), as a gate at its turnstile would.

Figures, each against a floor measured in the same run:

- the second event's sync (process wall time) against the plain httpx + json + sqlite3
  loop paging the same event into a new file, run once before and once after it (their
  mean is the floor, so both see the same machine weather); goal <= 1.5x;
- check p99 during that sync against idle checks, half taken before the sync and half
  after it; goal <= 2x.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from scanner.bench.stats import goal, percentiles
from scanner.bench.sync import _run_plain, _run_sync, start_sim
from scanner.cli.child import gate_argv, gate_env
from scanner.errors import GateError
from scanner.sim.server import DEFAULT_TOKEN
from scanner.vivenu.urls import API_PREFIX

GOAL_SECOND_RATIO = 1.5
GOAL_BESIDE_RATIO = 2.0
IDLE_CHECKS = 2000
_PICKS = 5000


def _checks(check: Any, picks: list[Any], count: int, start: int) -> list[float]:
    timed = []
    for n in range(start, start + count):
        barcode, direction = picks[n % len(picks)]
        began = time.perf_counter()
        check(barcode, direction)
        timed.append((time.perf_counter() - began) * 1000)
    return timed


def _beside(check: Any, picks: list[Any], env: dict[str, str],
            workdir: Path) -> tuple[list[float], dict[str, Any]]:
    """Checks while ``gate sync --once`` runs in a child: their times and the child's."""
    out_path, err_path = workdir / "second.out", workdir / "second.err"
    timed: list[float] = []
    started = time.monotonic()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(gate_argv("sync", "--once", "--json"), env=env, stdout=out,
                                stderr=err)
        n = 0
        while True:
            # WNOHANG: reaps this child alone, with its own rusage, once it has ended.
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            timed += _checks(check, picks, 1, n)
            n += 1
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = err_path.read_text(errors="replace").strip()[-500:]
        raise GateError(f"bench sync: the second event's sync failed: {tail}")
    reports = orjson.loads(out_path.read_bytes())
    return timed, {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "reports": reports}


def measure(tickets: int, workdir: Path) -> dict[str, Any]:
    """The two-event round's figures (module docstring)."""
    from scanner.app import Gate
    from scanner.config import ApiConfig, GateConfig, LookupConfig, Secret
    from scanner.decide.model import Direction
    from scanner.run.daemon import favour_decisions

    sim, url = start_sim(tickets, events=2)
    db = workdir / "two-events.db"
    try:
        with httpx.Client(base_url=url, headers={"token": DEFAULT_TOKEN}) as control:
            first, second = (doc["_id"] for doc in control.get(f"{API_PREFIX}/events").json())
        env = gate_env(GATE_API_URL=url, GATE_API_TOKEN=DEFAULT_TOKEN, GATE_DB=str(db),
                       GATE_EVENTS=first)
        first_run = _run_sync(env, workdir)
        with sqlite3.connect(db) as conn:
            barcodes = [row[0] for row in conn.execute(
                "SELECT barcode FROM tickets ORDER BY random() LIMIT ?", (_PICKS,))]
        rng = random.Random(3)
        picks = [(b, rng.choice((Direction.IN, Direction.OUT))) for b in barcodes]
        plain_before = _run_plain(url, second, workdir, workdir / "plain-before.db")
        config = GateConfig(gate_id="bench", db=str(db), events=(first, second),
                            api=ApiConfig(url=url, token=Secret(DEFAULT_TOKEN)),
                            lookup=LookupConfig(deadline_ms=0))
        with Gate(config) as gate:
            check = gate.gatekeeper.check
            _checks(check, picks, 200, 0)  # warm: statements, policy, page cache
            favour_decisions()
            idle = _checks(check, picks, IDLE_CHECKS // 2, 0)
            busy, run = _beside(check, picks, {**env, "GATE_EVENTS": second}, workdir)
            idle += _checks(check, picks, IDLE_CHECKS // 2, IDLE_CHECKS // 2)
        plain_after = _run_plain(url, second, workdir, workdir / "plain-after.db")
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    [report] = run["reports"]
    floor = (plain_before["wall"] + plain_after["wall"]) / 2
    ratio = run["wall"] / floor
    idle_f, busy_f = percentiles(idle), percentiles(busy)
    beside = busy_f["p99_ms"] / max(idle_f["p99_ms"], 1e-9)
    return {
        "tickets": tickets,
        "first_wall_seconds": round(first_run["wall"], 3),
        "second_wall_seconds": round(run["wall"], 3),
        "second_sync_seconds": round(report["seconds"], 3),
        "second_upserted": report["upserted"],
        "second_written": report["written"], "second_commits": report["commits"],
        "second_cpu_seconds": round(run["cpu"], 3),
        "plain_wall_seconds": [round(plain_before["wall"], 3), round(plain_after["wall"], 3)],
        "plain_tickets": plain_after["tickets"],
        "second_ratio": round(ratio, 3),
        "idle": idle_f, "beside": busy_f, "checks_beside": len(busy),
        "beside_ratio": round(beside, 3),
        "goals": [goal("second event's first sync / plain loop", ratio, GOAL_SECOND_RATIO, "x"),
                  goal("check p99 beside it / idle p99", beside, GOAL_BESIDE_RATIO, "x")],
    }


def lines(figures: dict[str, Any]) -> list[str]:
    """The round as the command prints it."""
    from scanner.bench.stats import figure_line, goal_line

    plain = figures["plain_wall_seconds"]
    out = [f"two events: second event's first full sync of {figures['tickets']} tickets "
           f"beside the first: {figures['second_wall_seconds']} s process wall (sync "
           f"{figures['second_sync_seconds']} s, +{figures['second_upserted']}, written "
           f"{figures['second_written']} in {figures['second_commits']} transactions); plain "
           f"loop "
           f"{plain[0]} s before, {plain[1]} s after; ratio {figures['second_ratio']}",
           figure_line("checks idle (before and after)", figures["idle"], 34),
           figure_line(f"checks beside it ({figures['checks_beside']})", figures["beside"], 34)]
    return out + [goal_line(g) for g in figures["goals"]]

