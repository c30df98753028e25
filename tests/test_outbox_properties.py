"""Property: whatever the server answers, and in whatever order, no scan is ever lost.

The server here is a scripted fake of ``post_scans`` (the simulator's fault switches are
exercised in test_outbox.py); the journal is a real SQLite file. Answers per request:
ok; down (nothing stored, ServerUnavailable); lost (stored, but the answer never arrives);
and any batch holding a poisoned barcode is refused with 400.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kits.journal import make_decision, make_ticket, open_journal

from scanner.decide.model import Reason
from scanner.errors import BadRequest, ServerUnavailable
from scanner.journal import Journal
from scanner.journal.ids import new_scan_id
from scanner.upload.outbox import Outbox

EVENTS = ("ev-a", "ev-b")


class ScriptedServer:
    def __init__(self, answers: list[str], poison: set[str]) -> None:
        self._answers = iter(answers)
        self.poison = poison
        self.received: list[tuple[str, str, str]] = []
        self.used: list[str] = []

    def post_scans(self, event_id: str, scans: list[dict[str, Any]]) -> dict[str, Any]:
        answer = next(self._answers, "ok")
        self.used.append(answer)
        if answer == "down":
            raise ServerUnavailable("scripted: down")
        if any(scan["barcode"] in self.poison for scan in scans):
            error = BadRequest("scripted: HTTP 400", status=400)
            error.body = "poisoned"
            raise error
        self.received.extend((event_id, s["barcode"], s["scanned_at"]) for s in scans)
        if answer == "lost":
            raise ServerUnavailable("scripted: answer lost")
        return {"status": "OK"}


scan_specs = st.lists(st.tuples(st.sampled_from(EVENTS),      # event
                                st.booleans(),                 # a short (local) read
                                st.booleans()),                # poisoned
                      max_size=25)
answer_scripts = st.lists(st.sampled_from(["ok", "down", "lost"]), max_size=40)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(specs=scan_specs, answers=answer_scripts, batch_size=st.integers(1, 6))
def test_every_scan_ends_sent_or_rejected_once_and_sent_ones_are_on_the_server(
        specs, answers, batch_size):
    with tempfile.TemporaryDirectory() as tmp, open_journal(Path(tmp) / "gate.db") as journal:
        check(journal, specs, answers, batch_size)


def check(journal: Journal, specs, answers: list[str], batch_size: int) -> None:
    poison: set[str] = set()
    for n, (event, short, poisoned) in enumerate(specs):
        if short:
            decision = make_decision(None, granted=False, barcode=f"S{n}",
                                     reason=Reason.UNKNOWN_BARCODE)
        else:
            decision = make_decision(make_ticket(n, event=event))
            if poisoned:
                poison.add(decision.barcode)
        journal.record(decision, scan_id=new_scan_id(), latency_ms=0.1, event_id=event,
                       scanned_at=f"2030-01-01T10:00:00.{n:03d}Z")
    server = ScriptedServer(answers, poison)
    outbox = Outbox(journal, server, batch_size)
    # Once the script runs out every answer is ok, so this many drains always suffice.
    for _ in range(len(answers) + 2):
        outbox.drain_once()

    entries = list(journal.entries())
    assert len({e["scan_id"] for e in entries}) == len(entries) == len(specs)
    uploadable = [e for e in entries if e["upload_state"] != "local"]
    assert all(len(e["barcode"]) >= 8 for e in uploadable)
    assert all(e["upload_state"] in ("sent", "rejected") for e in uploadable)
    assert {e["barcode"] for e in uploadable if e["upload_state"] == "rejected"} == poison
    on_server = Counter(server.received)
    sent = [(e["event_id"], e["barcode"], e["scanned_at"])
            for e in uploadable if e["upload_state"] == "sent"]
    assert all(on_server[key] >= 1 for key in sent)
    # Nothing reaches the server that the journal does not hold as sent.
    assert set(on_server) == set(sent)
    if "lost" not in server.used:
        assert all(count == 1 for count in on_server.values())
