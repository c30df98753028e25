"""``gate bench sync``'s two-event round: a second event's first full sync on a gate that
already serves one, and the decisions for the first event beside it.

The simulator serves two events of N tickets each. The first event's full sync runs once
(``gate sync --once``) and its store is copied for each run after it. A round runs the
second event's first full sync twice, each in its own child on a fresh copy: once alone,
timed, and once while this process checks the first event's tickets back to back through
the gate's ``Gatekeeper.check`` (store lookup, decision, fsync'd journal write), as a gate
at its turnstile would, only far busier.

Figures, each against a floor measured in the same run:

- the second event's sync alone (process wall time) against the plain httpx + json +
  sqlite3 loop paging the same event into a new file; the plain runs alternate with the
  rounds (one before the first, one after each), and a round's ratio is against the mean
  of the plain runs around it, so both see the same machine weather; goal: median <= 1.5x;
- check p99 during the other sync against idle checks of the same round, half taken
  before it and half after; goal: median <= 2x.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from scanner.bench.stats import goal, percentiles
from scanner.bench.sync_runs import CONTROL_TIMEOUT, run_plain, run_sync, start_sim
from scanner.child import gate_argv, gate_env
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


def _beside_round(config: Any, picks: list[Any], env: dict[str, str],
                  workdir: Path) -> dict[str, Any]:
    """On the store ``config`` names: idle checks, checks beside the second event's sync,
    idle checks again."""
    from scanner.app import Gate
    from scanner.app.daemon import favour_decisions

    with Gate(config) as gate:
        check = gate.gatekeeper.check
        _checks(check, picks, 200, 0)  # warm: statements, policy, page cache
        favour_decisions()
        idle = _checks(check, picks, IDLE_CHECKS // 2, 0)
        busy, run = _beside(check, picks, env, workdir)
        idle += _checks(check, picks, IDLE_CHECKS // 2, IDLE_CHECKS // 2)
    [report] = run["reports"]
    idle_f, busy_f = percentiles(idle), percentiles(busy)
    return {"wall": run["wall"], "report": report, "idle": idle_f,
            "beside": busy_f, "checks": len(busy),
            "beside_ratio": busy_f["p99_ms"] / max(idle_f["p99_ms"], 1e-9)}


def measure(tickets: int, workdir: Path, rounds: int = 1) -> dict[str, Any]:
    """The two-event round's figures (module docstring), over ``rounds`` rounds."""
    from scanner.config import ApiConfig, GateConfig, LookupConfig, Secret
    from scanner.decide.model import Direction

    sim, url = start_sim(tickets, events=2)
    base = workdir / "first-event.db"
    try:
        with httpx.Client(base_url=url, headers={"token": DEFAULT_TOKEN},
                          timeout=CONTROL_TIMEOUT) as control:
            first, second = (doc["_id"] for doc in control.get(f"{API_PREFIX}/events").json())
        first_run = run_sync(gate_env(GATE_API_URL=url, GATE_API_TOKEN=DEFAULT_TOKEN,
                                       GATE_DB=str(base), GATE_EVENTS=first), workdir)
        with sqlite3.connect(base) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the copies need the file alone
            barcodes = [row[0] for row in conn.execute(
                "SELECT barcode FROM tickets ORDER BY random() LIMIT ?", (_PICKS,))]
        rng = random.Random(3)
        picks = [(b, rng.choice((Direction.IN, Direction.OUT))) for b in barcodes]
        plains = [run_plain(url, second, workdir, workdir / "plain-0.db")]
        runs, besides = [], []
        for n in range(rounds):
            for kind in ("alone", "beside"):
                db = workdir / f"round-{n}-{kind}.db"
                shutil.copyfile(base, db)
                env = gate_env(GATE_API_URL=url, GATE_API_TOKEN=DEFAULT_TOKEN,
                               GATE_DB=str(db), GATE_EVENTS=second)
                if kind == "alone":
                    runs.append(run_sync(env, workdir))
                else:
                    config = GateConfig(gate_id="bench", db=str(db), events=(first, second),
                                        api=ApiConfig(url=url, token=Secret(DEFAULT_TOKEN)),
                                        lookup=LookupConfig(deadline_ms=0))
                    besides.append(_beside_round(config, picks, env, workdir))
                for stale in workdir.glob(f"round-{n}-{kind}*"):  # one store at a time
                    stale.unlink()
            plains.append(run_plain(url, second, workdir, workdir / f"plain-{n + 1}.db"))
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    ratios = [run["wall"] / ((before["wall"] + after["wall"]) / 2)
              for run, before, after in zip(runs, plains[:-1], plains[1:], strict=True)]
    ratio = statistics.median(ratios)
    beside = statistics.median(run["beside_ratio"] for run in besides)
    last = runs[-1]
    return {
        "tickets": tickets,
        "rounds": rounds,
        "first_wall_seconds": round(first_run["wall"], 3),
        "second_wall_seconds": [round(run["wall"], 3) for run in runs],
        "second_sync_seconds": [round(run["report"]["seconds"], 3) for run in runs],
        "second_cpu_seconds": [round(run["cpu"], 3) for run in runs],
        "beside_wall_seconds": [round(run["wall"], 3) for run in besides],
        "second_upserted": last["report"]["upserted"],
        "second_written": last["report"]["written"],
        "second_commits": last["report"]["commits"],
        "plain_wall_seconds": [round(plain["wall"], 3) for plain in plains],
        "plain_tickets": plains[-1]["tickets"],
        "second_ratios": [round(r, 3) for r in ratios],
        "second_ratio": round(ratio, 3),
        "idle": [run["idle"] for run in besides],
        "beside": [run["beside"] for run in besides],
        "checks_beside": [run["checks"] for run in besides],
        "beside_ratios": [round(run["beside_ratio"], 3) for run in besides],
        "beside_ratio": round(beside, 3),
        "goals": [goal("second event's first sync / plain loop (median)", ratio,
                       GOAL_SECOND_RATIO, "x"),
                  goal("check p99 beside it / idle p99 (median)", beside,
                       GOAL_BESIDE_RATIO, "x")],
    }


def lines(figures: dict[str, Any]) -> list[str]:
    """The round as the command prints it."""
    from scanner.bench.stats import figure_line, goal_line

    out = [f"two events: the second event's first full sync of {figures['tickets']} tickets "
           f"beside the first (written {figures['second_written']}, "
           f"{figures['second_commits']} transactions), {figures['rounds']} rounds: process "
           f"wall {_seconds(figures['second_wall_seconds'])} (sync "
           f"{_seconds(figures['second_sync_seconds'])}); plain loop before, between and "
           f"after: {_seconds(figures['plain_wall_seconds'])}; ratios "
           f"{', '.join(f'{r:.3f}' for r in figures['second_ratios'])}",
           f"  the same sync beside back-to-back checks of the first event: process wall "
           f"{_seconds(figures['beside_wall_seconds'])}"]
    for n, (idle, beside) in enumerate(zip(figures["idle"], figures["beside"], strict=True)):
        out += [figure_line(f"round {n + 1}: checks idle (before and after)", idle, 44),
                figure_line(f"round {n + 1}: checks beside it "
                            f"({figures['checks_beside'][n]})", beside, 44)]
    return out + [goal_line(g) for g in figures["goals"]]


def _seconds(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values) + " s"
