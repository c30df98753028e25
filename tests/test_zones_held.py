"""A ticket held for the steward's check takes its place in a capped zone: the real gate
built from its configuration, its own zone book, real SQLite files, the real desk and lanes.

Every ticket of type ``tt-1`` (all of ``make_ticket``'s) is held; ``plain`` makes one that
is not."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kits.gate import MakeGate, build_gate
from kits.journal import NOW, make_ticket
from kits.waiting import wait_for

from scanner.app import Gate
from scanner.decide.model import Direction, Reason
from scanner.errors import NotAnswerable, StoreError
from scanner.gatekeeper import CheckResult
from scanner.journal.supervision import Who
from scanner.run.lane import Lane, LaneRead
from scanner.supervise import Answer, Desk, Holds
from scanner.supervise.desk import Acting
from scanner.tickets import Ticket

IN, OUT = Direction.IN, Direction.OUT
LOUNGE = [{"id": "lounge", "name": "VIP lounge", "capacity": 2}]
HELD = {"confirm_ticket_types": ["tt-1"], "multi_checkin": True}
STEWARD = Acting("steward", "s1")


def plain(n: int) -> Ticket:
    return make_ticket(n)._replace(ticket_type_id="tt-2")


def lounge_gate(make: Any, folder: Path, **overrides: Any) -> Gate:
    gate: Gate = make(folder, zone="lounge", zones=LOUNGE, policy=HELD, **overrides)
    gate.store.upsert([make_ticket(n) for n in range(1, 7)] + [plain(n) for n in (7, 8)])
    return gate


def inside(gate: Gate) -> int:
    return gate.zones.counts(NOW).get("lounge", 0)


class Lanes:
    """Two turnstile lanes of one gate, submitting through its desk as ``gate run`` wires
    them: each waits on its held ticket, so two tickets can be held at once."""

    def __init__(self, gate: Gate, timeout: float = 30.0) -> None:
        self.gate = gate
        self.opened: list[CheckResult] = []
        self.desk = Desk(gate.journal, gate.gatekeeper, self._act, Holds(timeout))
        self.lanes = [Lane(name, gate.gatekeeper, self.desk.submit, heartbeat_timeout=60,
                           interrupted=self.desk.holds.close) for name in ("in-1", "in-2")]
        for lane in self.lanes:
            lane.start()

    def _act(self, result: CheckResult, _read_ns: int | None = None) -> bool:
        if result.decision.granted:
            self.opened.append(result)
        return True

    def hold(self, lane: int, n: int) -> str:
        """Offer ticket ``n`` on ``lane``; the held scan's id once it is held."""
        before = set(self.desk.holds.pending())
        self.lanes[lane].offer(LaneRead(make_ticket(n).barcode, IN, "handheld"))
        wait_for(lambda: set(self.desk.holds.pending()) - before, "the ticket to be held")
        [scan_id] = set(self.desk.holds.pending()) - before
        return scan_id

    def answered(self, count: int) -> None:
        """``count`` answers journaled and every hold over: an answer is journaled first,
        then counted in the zone book, acted on, and its held place given back."""
        holds = self.desk.holds
        wait_for(lambda: len(self.answers()) == count
                 and set(holds.unsettled()) == set(holds.pending()),
                 f"{count} answers journaled and settled")

    def answers(self) -> list[str]:
        return [e["reason"] for e in self.gate.journal.entries()
                if e["reason"] in ("CONFIRMED", "NOT_CONFIRMED")]

    def stop(self) -> None:
        for lane in self.lanes:
            lane.stop()
            lane.join(5)


@pytest.fixture
def lanes(make_gate: MakeGate, tmp_path: Path) -> Iterator[Lanes]:
    running = Lanes(lounge_gate(make_gate, tmp_path))
    yield running
    running.stop()


def test_two_held_tickets_fill_a_zone_of_two_and_a_third_scan_is_zone_full(
        lanes: Lanes) -> None:
    """The third is refused before a steward is asked to check it, held type or not."""
    lanes.hold(0, 1)
    lanes.hold(1, 2)
    gk = lanes.gate.gatekeeper
    third = gk.check(make_ticket(3).barcode, IN)
    assert third.decision.reason is Reason.ZONE_FULL
    assert "VIP lounge is full" in third.decision.message
    assert gk.check(plain(7).barcode, IN).decision.reason is Reason.ZONE_FULL
    assert inside(lanes.gate) == 0 and lanes.gate.zones.rights("lounge") == 0


def test_a_refused_hold_gives_its_place_back(lanes: Lanes) -> None:
    first = lanes.hold(0, 1)
    lanes.hold(1, 2)
    assert lanes.desk.answer(first, False, STEWARD)
    lanes.answered(1)
    assert lanes.answers() == ["NOT_CONFIRMED"]
    assert lanes.gate.zones.rights("lounge") == 1
    assert lanes.gate.gatekeeper.check(plain(7).barcode, IN).decision.reason is Reason.GRANTED
    assert inside(lanes.gate) == 1


def test_a_hold_that_times_out_gives_its_place_back(make_gate: MakeGate,
                                                    tmp_path: Path) -> None:
    running = Lanes(lounge_gate(make_gate, tmp_path), timeout=0.5)
    try:
        running.hold(0, 1)
        running.hold(1, 2)
        running.answered(2)
        assert running.answers() == ["NOT_CONFIRMED", "NOT_CONFIRMED"]
        assert running.gate.zones.rights("lounge") == 2
        gk = running.gate.gatekeeper
        assert [gk.check(plain(n).barcode, IN).decision.reason for n in (7, 8)] == \
            [Reason.GRANTED, Reason.GRANTED]
    finally:
        running.stop()


def test_a_stopping_lane_gives_its_held_place_back(lanes: Lanes) -> None:
    lanes.hold(0, 1)
    lanes.lanes[0].stop()
    lanes.answered(1)
    assert lanes.gate.zones.rights("lounge") == 2


def test_confirmations_count_once_open_once_and_fill_the_zone(lanes: Lanes) -> None:
    for lane, n in ((0, 1), (1, 2)):
        assert lanes.desk.answer(lanes.hold(lane, n), True, STEWARD)
    lanes.answered(2)
    assert lanes.answers() == ["CONFIRMED", "CONFIRMED"]
    assert len(lanes.opened) == 2
    assert inside(lanes.gate) == 2
    assert sum(lanes.gate.journal.inside_counts().values()) == 2
    assert lanes.gate.zones.rights("lounge") == 0
    assert lanes.gate.gatekeeper.check(plain(7).barcode, IN).decision.reason \
        is Reason.ZONE_FULL
    assert lanes.gate.gatekeeper.check(make_ticket(1).barcode, OUT).decision.granted
    assert lanes.gate.gatekeeper.check(plain(7).barcode, IN).decision.granted


def test_a_gate_killed_while_holding_has_the_place_back_after_its_restart(
        make_gate: MakeGate, tmp_path: Path) -> None:
    """The hold is journaled as no entry, so the place counts from the journal again."""
    gate = lounge_gate(make_gate, tmp_path)
    held = gate.gatekeeper.check(make_ticket(1).barcode, IN)
    assert held.decision.reason is Reason.ACTION_REQUIRED
    assert gate.gatekeeper.check(plain(7).barcode, IN).decision.granted
    assert gate.gatekeeper.check(plain(8).barcode, IN).decision.reason is Reason.ZONE_FULL
    # Never answered, never closed: the new gate over the same files is the restart.
    again = lounge_gate(make_gate, tmp_path)
    assert again.gatekeeper.check(plain(8).barcode, IN).decision.reason is Reason.GRANTED
    assert inside(again) == 2 and again.zones.rights("lounge") == 0


def test_a_full_zone_with_when_full_warn_still_holds_the_ticket(make_gate: MakeGate,
                                                               tmp_path: Path) -> None:
    gate = make_gate(tmp_path, zone="lounge", policy=HELD,
                     zones=[{"id": "lounge", "name": "VIP lounge", "capacity": 1,
                             "when_full": "warn"}])
    gate.store.upsert([make_ticket(1), make_ticket(2)])
    gk = gate.gatekeeper
    assert gk.check(make_ticket(1).barcode, IN).decision.reason is Reason.ACTION_REQUIRED
    second = gk.check(make_ticket(2).barcode, IN).decision
    assert second.reason is Reason.ACTION_REQUIRED
    assert "VIP lounge is full" in second.message


def test_an_unjournaled_hold_keeps_no_place(make_gate: MakeGate, tmp_path: Path) -> None:
    """A journal that cannot write refuses the scan; its place is not lost with it."""
    gate = lounge_gate(make_gate, tmp_path)
    with sqlite3.connect(str(gate.journal.engine.url.database)) as db:  # a write the disk refuses
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON journal "
                   "BEGIN SELECT RAISE(ABORT, 'disk refused'); END")
    with pytest.raises(StoreError):
        gate.gatekeeper.check(make_ticket(1).barcode, IN)
    assert gate.zones.rights("lounge") == 2


# -- overrides -------------------------------------------------------------------------------

def supervisor_desk(gate: Gate) -> Desk:
    return Desk(gate.journal, gate.gatekeeper, lambda *_args: True, Holds(5.0))


def passback_gate(make: MakeGate, folder: Path) -> Gate:
    """A lounge of two with no re-entry: a ticket back in is denied REENTRY_NOT_ALLOWED."""
    gate = make(folder, zone="lounge", zones=LOUNGE, policy={"multi_checkin": False})
    gate.store.upsert([plain(n) for n in range(1, 5)])
    return gate


def test_an_override_into_a_capped_zone_takes_a_place(make_gate: MakeGate,
                                                      tmp_path: Path) -> None:
    gate = passback_gate(make_gate, tmp_path)
    gk = gate.gatekeeper
    gk.check(plain(1).barcode, IN)
    gk.check(plain(1).barcode, OUT)
    denied = gk.check(plain(1).barcode, IN)
    assert denied.decision.reason is Reason.REENTRY_NOT_ALLOWED
    supervisor_desk(gate).override(denied.scan_id, Acting("supervisor"), "PASSBACK_FORGIVEN")
    assert inside(gate) == 1
    assert gk.check(plain(2).barcode, IN).decision.granted
    assert gk.check(plain(3).barcode, IN).decision.reason is Reason.ZONE_FULL


def test_an_override_into_a_full_zone_is_refused_and_journals_nothing(
        make_gate: MakeGate, tmp_path: Path) -> None:
    gate = passback_gate(make_gate, tmp_path)
    gk = gate.gatekeeper
    gk.check(plain(1).barcode, IN)
    gk.check(plain(1).barcode, OUT)
    denied = gk.check(plain(1).barcode, IN)
    assert gk.check(plain(2).barcode, IN).decision.granted
    assert gk.check(plain(3).barcode, IN).decision.granted
    before = len(list(gate.journal.entries()))
    with pytest.raises(NotAnswerable, match="VIP lounge is full"):
        supervisor_desk(gate).override(denied.scan_id, Acting("supervisor"),
                                       "PASSBACK_FORGIVEN")
    assert len(list(gate.journal.entries())) == before
    assert inside(gate) == 2
    assert gk.check(plain(2).barcode, OUT).decision.granted
    supervisor_desk(gate).override(denied.scan_id, Acting("supervisor"), "PASSBACK_FORGIVEN")
    assert inside(gate) == 2


# -- never beyond capacity -------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_holds_answers_overrides_and_exits_never_fill_a_zone_beyond_capacity(
        tmp_path: Path, seed: int) -> None:
    """Random interleavings of held and plain tickets, answers of every kind, exits and
    overrides: the tickets inside, the places kept for open holds and the places the gate
    still holds never add up to more than two; once every hold is answered, a new ticket
    finds a place exactly when fewer than two are inside (no place was lost)."""
    rnd = random.Random(seed)
    gate = build_gate(tmp_path, zone="lounge", zones=LOUNGE,
                      policy={"confirm_ticket_types": ["tt-1"]})
    try:
        gate.store.upsert([make_ticket(n) for n in range(1, 6)] +
                          [plain(n) for n in range(6, 12)])
        gk, desk = gate.gatekeeper, supervisor_desk(gate)
        codes = [make_ticket(n).barcode for n in range(1, 6)] + \
            [plain(n).barcode for n in range(6, 11)]
        open_holds: list[CheckResult] = []
        denials: list[str] = []
        for _ in range(60):
            step = rnd.choice(("scan", "scan", "answer", "exit", "override"))
            if step == "scan":
                result = gk.check(rnd.choice(codes), IN)
                if result.decision.reason is Reason.ACTION_REQUIRED:
                    open_holds.append(result)
                elif not result.decision.granted:
                    denials.append(result.scan_id)
            elif step == "answer" and open_holds:
                held = open_holds.pop(rnd.randrange(len(open_holds)))
                desk.settle(held, rnd.choice(list(Answer)), Who("steward"))
            elif step == "exit":
                gk.check(rnd.choice(codes), OUT)
            elif step == "override" and denials:
                with contextlib.suppress(NotAnswerable):  # a full zone: nothing admitted
                    desk.override(denials.pop(rnd.randrange(len(denials))),
                                  Acting("supervisor"), "OTHER")
            held_here = max(0, gate.zones.rights("lounge"))
            assert inside(gate) + len(open_holds) + held_here <= 2
        for held in open_holds:
            desk.settle(held, Answer.REFUSE, Who("steward"))
        assert inside(gate) == sum(gate.journal.inside_counts().values())
        room = inside(gate) < 2
        assert gk.check(plain(11).barcode, IN).decision.granted is room
    finally:
        gate.close()


def test_lanes_racing_for_the_last_place_admit_one(make_gate: MakeGate,
                                                   tmp_path: Path) -> None:
    """Two lanes, one place left: the steward confirms both held tickets at once; only one
    of them was held, the other found the zone full."""
    gate = lounge_gate(make_gate, tmp_path)
    assert gate.gatekeeper.check(plain(7).barcode, IN).decision.granted
    running = Lanes(gate)
    try:
        codes = [make_ticket(1).barcode, make_ticket(2).barcode]
        go = threading.Barrier(2)

        def offer(i: int) -> None:
            go.wait()
            running.lanes[i].offer(LaneRead(codes[i], IN, "handheld"))

        threads = [threading.Thread(target=offer, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_for(lambda: len(list(gate.journal.entries())) == 3, "both decided")
        reasons = sorted(e["reason"] for e in gate.journal.entries())
        assert reasons == ["ACTION_REQUIRED", "GRANTED", "ZONE_FULL"]
        assert running.desk.answer(None, True, STEWARD)
        running.answered(1)
        assert inside(gate) == 2
    finally:
        running.stop()
