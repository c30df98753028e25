"""The first full sync as the page, `gate status` and /healthz see it: tickets done of the
listing's total from the store's own cursor, over the events that never finished one; a
later reconcile is not a first sync; the time left from the pace seen."""

from __future__ import annotations

from pathlib import Path

from kits.gate import MakeGate
from kits.journal import api_config

from scanner.cli.status_cmd import render
from scanner.kiosk.state import syncing
from scanner.sim import SimServer
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
