"""The first full sync as the page, `gate status` and /healthz see it: tickets done of the
listing's total from the store's own cursor, over the events that never finished one; a
later reconcile is not a first sync; the time left from the pace seen; /healthz says
"syncing" through a slow first sync of a real daemon and "ready" after."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from kits import loopback
from kits.gate import MakeGate
from kits.journal import api_config
from kits.kiosk import free_port
from kits.waiting import wait_for

from scanner.app.daemon import start_daemon
from scanner.cli.status_cmd import render
from scanner.clock import utc_now
from scanner.config import SyncConfig, WebConfig
from scanner.kiosk.state import syncing
from scanner.sim import Faults, SimServer, World
from scanner.status import first_sync, first_sync_words, gather
from scanner.store import sync_state
from scanner.sync.progress import Eta


def test_a_first_full_sync_in_progress_counts_its_cursor_against_its_total(
        make_gate: MakeGate, tmp_path: Path, sim_server: SimServer) -> None:
    event = sim_server.world.event_ids[0]
    with make_gate(tmp_path, events=(event,), api=api_config(sim_server)) as gate:
        assert first_sync(gate.store.sync_states(), (event,)) == \
            {"events": [event], "done": 0, "total": None}  # configured, not begun
        gate.store.begin_full(event, "2026-12-01T00:00:00.000Z")
        with gate.store.engine.begin() as conn:
            sync_state.save_cursor(conn, event, skip=1200, anchor=(), total=48000)
        doc = gather(gate)
        assert doc["first_sync"] == {"events": [event], "done": 1200, "total": 48000}
        assert "FIRST SYNC: 1200 of 48000 tickets (2 %)" in render(doc)


def test_a_finished_sync_and_a_later_reconcile_are_not_a_first_sync(
        make_gate: MakeGate, tmp_path: Path, sim_server: SimServer) -> None:
    event = sim_server.world.event_ids[0]
    with make_gate(tmp_path, events=(event,), api=api_config(sim_server)) as gate:
        gate.syncer.run_once()
        assert first_sync(gate.store.sync_states(), (event,)) is None
        gate.store.begin_full(event, "2026-12-01T00:00:00.000Z")  # a reconcile begins
        assert gate.store.sync_states()[event]["full_in_progress"]
        assert first_sync(gate.store.sync_states(), (event,)) is None
        assert gather(gate)["first_sync"] is None


def test_the_words_say_so_before_the_total_is_known() -> None:
    assert first_sync_words({"done": 300, "total": None}) == "300 tickets so far"
    assert first_sync_words({"done": 300, "total": 1200}) == "300 of 1200 tickets (25 %)"


def test_time_left_follows_the_pace_seen_and_restarts_with_a_new_sync() -> None:
    now = [100.0]
    eta = Eta(clock=lambda: now[0])
    assert eta(1000, 10_000) is None          # one sample: no pace yet
    now[0] = 110.0
    assert eta(2000, 10_000) == 80.0          # 1000 tickets in 10 s, 8000 to go
    assert eta(2000, None) is None            # the total unknown
    now[0] = 111.0
    assert eta(10, 10_000) is None            # fewer than before: a sync begun again


def test_the_page_state_carries_progress_only_during_a_first_sync() -> None:
    assert syncing({"first_sync": None}, lambda d, t: None) is None
    assert syncing({"first_sync": {"done": 5, "total": 10}}, lambda d, t: 42.0) == \
        {"done": 5, "total": 10, "eta_s": 42.0}


@pytest.mark.slow
def test_healthz_says_syncing_through_a_slow_first_sync_and_ready_after(
        make_gate: MakeGate, tmp_path: Path) -> None:
    """``gate run`` against an API that pages slowly: /healthz answers 503 ``syncing`` with
    the tickets done of the total while the first sync runs, and ``gate status`` (its own
    process, the same files) shows that progress; once the pages come quickly and the sync
    ends, 200 ``ready``."""
    world = World(seed=17, events=1, tickets_per_event=300)
    event = world.event_ids[0]
    port = free_port()
    # 15 pages at 1.5 s each: the sync outlasts `gate status` starting on a loaded machine.
    with SimServer(world, Faults(latency_ms=1500)) as sim:
        gate = make_gate(tmp_path, clock=utc_now, events=(event,),
                         api=api_config(sim, retries=0, read_timeout=5.0),
                         sync=SyncConfig(page_size=20), web=WebConfig(port=port))
        config = gate.config
        daemon = start_daemon(gate)
        try:
            answers: list[httpx.Response] = []

            def healthz() -> dict[str, Any] | None:
                try:
                    answers.append(loopback.get(f"http://127.0.0.1:{port}/healthz", timeout=5))
                except httpx.HTTPError:
                    return None
                return dict(answers[-1].json())

            wait_for(lambda: (doc := healthz()) is not None and " of 300 tickets" in
                     " ".join(doc["reasons"]), "the first sync's total on /healthz", within=60)
            doc = answers[-1].json()
            assert answers[-1].status_code == 503
            assert doc["ok"] is False and doc["state"] == "syncing"
            [reason] = doc["reasons"]
            assert re.fullmatch(r"syncing: \d+ of 300 tickets \(\d+ %\)", reason), reason
            status = subprocess.run(
                [sys.executable, "-m", "scanner.cli.main", "status"], text=True,
                capture_output=True, timeout=120, check=False,
                env={**{k: v for k, v in os.environ.items() if not k.startswith("GATE_")},
                     "GATE_DB": config.db, "GATE_EVENTS": event})
            assert status.returncode == 0, status.stderr
            assert re.search(r"FIRST SYNC: \d+ of 300 tickets \(\d+ %\): not ready until it "
                             r"ends", status.stdout), status.stdout
            sim.faults.update(latency_ms=0)
            wait_for(lambda: (doc := healthz()) is not None and doc["ok"], "ready", within=60)
            assert answers[-1].status_code == 200
            assert {k: answers[-1].json()[k] for k in ("ok", "state", "reasons")} == {
                "ok": True, "state": "ready", "reasons": []}
            assert gate.store.count(event) == 300
        finally:
            daemon.stop(30)
