"""Stewards and supervisors on a real gate: SQLite journal, the simulator over real HTTP,
the kiosk on loopback, MockFactory pins. Overrides, information scans, held tickets,
wrong-gate routing and passage alarms."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kits import loopback
from kits.gate import write_toml
from kits.gpio import PASSAGE, rises
from kits.kiosk import KioskGate, quick_pin_file, running_lane

from scanner.cli.journal_cmds import write_rows
from scanner.config import PolicyConfig
from scanner.decide.model import Decision, Direction, Feedback, Reason
from scanner.decide.orders import Mode, VenueOrders
from scanner.journal import supervision
from scanner.journal.supervision import Who
from scanner.run.lane import Lane, LaneRead
from scanner.sim import SimServer
from scanner.supervise.holds import Answer

STEWARD_PIN, SUPERVISOR_PIN = "2468", "97531"
CONFIRM_PIN = 5
WAIT = 5.0


def wait_for(check: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def entries(kg: KioskGate) -> list[dict[str, Any]]:
    return list(kg.gate.journal.entries())


def login(kg: KioskGate, pin: str) -> httpx.Client:
    client = loopback.client(base_url=kg.url, timeout=10)
    assert client.post("/api/login", json={"pin": pin}).status_code == 200
    return client


def pins(kg: KioskGate, tmp_path: Path) -> None:
    """Both PINs set, then the kiosk restarted: it reads them at start."""
    quick_pin_file(kg.web.pin_file, STEWARD_PIN)
    quick_pin_file(kg.web.supervisor_pin_file, SUPERVISOR_PIN)
    kg.restart_kiosk()


def web(tmp_path: Path) -> Any:
    from kits.kiosk import free_port

    from scanner.kiosk import WebOptions

    return WebOptions(host="127.0.0.1", port=free_port(), pin_file=str(tmp_path / "kiosk.pin"),
                      supervisor_pin_file=str(tmp_path / "supervisor.pin"))


@pytest.fixture
def kg(tmp_path: Path, sim_server: SimServer) -> Iterator[KioskGate]:
    with KioskGate(tmp_path, sim_server, web(tmp_path)) as gate:
        pins(gate, tmp_path)
        yield gate


def discounted(kg: KioskGate) -> str:
    world = kg.sim.world
    return next(doc["barcode"] for event_id in world.event_ids
                for doc in world.current_tickets(event_id)
                if doc.get("discount") and doc.get("status", "VALID") == "VALID"
                and not doc.get("slotStartTime"))


@pytest.fixture
def held(tmp_path: Path, sim_server: SimServer) -> Iterator[KioskGate]:
    """Reduced-price tickets held for the steward, a wired confirm button."""
    with KioskGate(tmp_path, sim_server, web(tmp_path),
                   policy=PolicyConfig(confirm_discounted=True, confirm_timeout=30.0),
                   pins={"confirm_pin": CONFIRM_PIN}) as gate:
        pins(gate, tmp_path)
        yield gate


@pytest.fixture
def lane(held: KioskGate) -> Iterator[Lane]:
    with running_lane(held) as worker:
        yield worker


# -- overrides -------------------------------------------------------------------------------

def test_a_supervisors_override_is_journaled_counted_inside_and_uploaded_as_an_entry(
        kg: KioskGate, sim_server: SimServer) -> None:
    code = kg.valid_barcodes(1)[0]
    kg.read(code)
    kg.read(code, Direction.OUT)
    denied = kg.read(code)  # left, and re-entry is not allowed
    assert denied.decision.reason is Reason.REENTRY_NOT_ALLOWED
    inside = sum(kg.gate.journal.inside_counts().values())
    relay = kg.outputs.relay.pin
    # The exit's pulse ends first: an override while it runs extends it, with no rise.
    wait_for(lambda: not relay.state, "the relay to close after the exit")
    relay.clear_states()

    reply = login(kg, SUPERVISOR_PIN).post("/api/override", json={
        "scan_id": denied.scan_id, "why": "PASSBACK_FORGIVEN", "note": "went out for a medic"})

    assert reply.status_code == 200, reply.text
    done = reply.json()
    assert (done["granted"], done["reason"]) == (True, "OVERRIDDEN")
    row = supervision.entry(kg.gate.journal, done["scan_id"])
    assert row is not None
    assert (row["result"], row["direction"], row["answers"], row["role"], row["why"],
            row["note"]) == ("OK", "IN", denied.scan_id, "supervisor", "PASSBACK_FORGIVEN",
                             "went out for a medic")
    assert row["session"] and len(row["session"]) == 8
    assert sum(kg.gate.journal.inside_counts().values()) == inside + 1
    wait_for(lambda: rises(relay) == 1, "the relay to open for the override")
    assert kg.gate.outbox.drain_once().ok
    uploaded = [s for s in sim_server.world.scans if s["barcode"] == code]
    assert [(s["direction"], s["type"]) for s in uploaded][-1] == ("IN", "OK")
    assert len(uploaded) == 4


def test_a_steward_cannot_override_and_a_denial_is_overridden_once(kg: KioskGate) -> None:
    denied = kg.read("NOSUCHCODE42")
    body = {"scan_id": denied.scan_id, "why": "WRONG_READ"}
    assert login(kg, STEWARD_PIN).post("/api/override", json=body).status_code == 401
    supervisor = login(kg, SUPERVISOR_PIN)
    assert supervisor.post("/api/override", json=body).status_code == 200
    assert supervisor.post("/api/override", json=body).status_code == 409
    assert supervisor.post("/api/override", json=body | {"why": "BECAUSE"}).status_code == 400
    assert supervisor.post("/api/override", json=body | {"scan_id": "nope"}).status_code == 404
    assert [e["reason"] for e in entries(kg)] == ["UNKNOWN_BARCODE", "OVERRIDDEN"]


@pytest.mark.parametrize("reason", [Reason.BLOCKED, Reason.ENTRY_STOPPED, Reason.LOCKDOWN])
def test_a_denial_a_venue_command_made_is_not_overridden(kg: KioskGate, reason: Reason) -> None:
    """A lockdown, a stop or a ban is lifted by the venue's supervisors, not at one gate."""
    code = kg.valid_barcodes(1)[0]
    ticket = kg.gate.gatekeeper.tickets(code)[0]
    denied = Decision(False, reason, "ordered", Feedback.RED, Direction.IN, code, ticket)
    kg.gate.journal.record(denied, scan_id="ordered-1", scanned_at=kg.gate.gatekeeper.stamp(),
                           latency_ms=0.0)
    reply = login(kg, SUPERVISOR_PIN).post("/api/override", json={
        "scan_id": "ordered-1", "why": "STAFF_OR_ARTIST"})
    assert reply.status_code == 404
    assert "venue command" in reply.json()["error"]
    assert [e["reason"] for e in entries(kg)] == [reason.value]


def test_gate_journal_lists_an_override_with_who_and_why(kg: KioskGate) -> None:
    denied = kg.read("NOSUCHCODE43")
    login(kg, SUPERVISOR_PIN).post("/api/override", json={
        "scan_id": denied.scan_id, "why": "SUPPORT_CASE", "note": "ticket #1234 reissued"})
    out = io.StringIO()
    write_rows(kg.gate.journal.entries(), "text", out)
    last = out.getvalue().splitlines()[-1]
    assert "OVERRIDDEN" in last and "by supervisor" in last
    assert f"for {denied.scan_id}: SUPPORT_CASE: ticket #1234 reissued" in last


# -- information scans -----------------------------------------------------------------------

def test_an_information_scan_shows_the_ticket_and_leaves_journal_and_queue_alone(
        kg: KioskGate) -> None:
    code = kg.valid_barcodes(1)[0]
    kg.read(code)
    wait_for(lambda: entries(kg)[0]["actuated_at"], "the act stage's mark")
    before, queue = entries(kg), kg.gate.journal.stats()["queue_depth"]
    reply = login(kg, STEWARD_PIN).post("/api/info", json={"barcode": code})
    assert reply.status_code == 200
    shown = reply.json()
    assert (shown["type"], shown["reason"], shown["holder"]) == \
        ("info", "ALREADY_INSIDE", kg.gate.store.by_barcode(code)[0].name)
    assert entries(kg) == before
    assert kg.gate.journal.stats()["queue_depth"] == queue


def test_an_information_scan_needs_the_stewards_pin(kg: KioskGate) -> None:
    reply = loopback.post(kg.url + "/api/info", json={"barcode": kg.valid_barcodes(1)[0]})
    assert reply.status_code == 401


# -- held tickets ----------------------------------------------------------------------------

def held_rows(kg: KioskGate) -> list[tuple[str, str]]:
    return [(e["reason"], e["result"]) for e in entries(kg)]


def test_a_held_ticket_waits_for_the_stewards_confirm_on_the_kiosk(held: KioskGate,
                                                                   lane: Lane) -> None:
    relay = held.outputs.relay.pin
    relay.clear_states()
    lane.offer(LaneRead(discounted(held), Direction.IN, "handheld"))
    wait_for(lambda: held.desk.holds.pending(), "the ticket to be held")
    [scan_id] = held.desk.holds.pending()
    assert held_rows(held) == [("ACTION_REQUIRED", "FAIL")]
    assert rises(relay) == 0 and sum(held.gate.journal.inside_counts().values()) == 0
    reply = login(held, STEWARD_PIN).post("/api/confirm",
                                          json={"scan_id": scan_id, "confirm": True})
    assert reply.status_code == 200
    wait_for(lambda: len(entries(held)) == 2, "the confirmation")
    assert held_rows(held) == [("ACTION_REQUIRED", "FAIL"), ("CONFIRMED", "OK")]
    assert entries(held)[0]["upload_state"] == "local"
    assert (entries(held)[1]["answers"], entries(held)[1]["role"]) == (scan_id, "steward")
    wait_for(lambda: rises(relay) == 1, "the relay to open on the confirmation")
    assert sum(held.gate.journal.inside_counts().values()) == 1


def test_a_held_ticket_is_confirmed_by_the_wired_button(held: KioskGate, lane: Lane) -> None:
    relay = held.outputs.relay.pin
    relay.clear_states()
    lane.offer(LaneRead(discounted(held), Direction.IN, "handheld"))
    wait_for(lambda: held.desk.holds.pending(), "the ticket to be held")
    button = held.outputs.factory.pin(CONFIRM_PIN)
    button.drive_low()  # the contact closes to ground
    button.drive_high()
    wait_for(lambda: len(entries(held)) == 2, "the confirmation")
    assert held_rows(held)[1] == ("CONFIRMED", "OK")
    assert entries(held)[1]["role"] == "button"
    wait_for(lambda: rises(relay) == 1, "the relay to open")


def test_a_held_ticket_nobody_answers_is_refused_and_the_gate_stays_shut(
        held: KioskGate, lane: Lane) -> None:
    held.desk.holds.timeout = 1.0
    relay = held.outputs.relay.pin
    relay.clear_states()
    lane.offer(LaneRead(discounted(held), Direction.IN, "handheld"))
    wait_for(lambda: len(entries(held)) == 2, "the timeout (1 s)")
    assert held_rows(held) == [("ACTION_REQUIRED", "FAIL"), ("NOT_CONFIRMED", "FAIL")]
    assert entries(held)[1]["role"] == "gate" and entries(held)[1]["why"] == "TIMEOUT"
    time.sleep(0.2)
    assert rises(relay) == 0
    assert sum(held.gate.journal.inside_counts().values()) == 0


def test_a_held_ticket_holds_its_lane_and_the_next_read_waits(held: KioskGate,
                                                              lane: Lane) -> None:
    """A turnstile serves one person at a time: the read behind the held one is decided
    only once the steward answered."""
    lane.offer(LaneRead(discounted(held), Direction.IN, "handheld"))
    wait_for(lambda: held.desk.holds.pending(), "the ticket to be held")
    lane.offer(LaneRead(held.valid_barcodes(1)[0], Direction.IN, "handheld"))
    time.sleep(0.3)
    assert len(entries(held)) == 1
    assert held.desk.answer(None, False, _steward())
    wait_for(lambda: len(entries(held)) == 3, "the refusal, then the next read")
    assert [r for r, _ in held_rows(held)][1] == "NOT_CONFIRMED"


def _steward() -> Any:
    from scanner.supervise.desk import Acting

    return Acting("steward", "test")


# -- passage alarms --------------------------------------------------------------------------

@pytest.fixture
def turnstile(tmp_path: Path, sim_server: SimServer) -> Iterator[KioskGate]:
    with KioskGate(tmp_path, sim_server, web(tmp_path), pins={"passage_pin": PASSAGE},
                   held_after=1.0) as gate:
        pins(gate, tmp_path)
        yield gate


def push(kg: KioskGate) -> None:
    contact = kg.outputs.factory.pin(PASSAGE)
    contact.drive_low()
    contact.drive_high()


def stream(kg: KioskGate, found: list[str], ready: threading.Event) -> None:
    with loopback.stream("GET", kg.url + "/events", timeout=10) as reply:
        for line in reply.iter_lines():
            ready.set()
            if line.startswith("event: "):
                found.append(line.removeprefix("event: "))
            if line.startswith("data: ") and '"PASSAGE_FORCED"' in line:
                found.append(line)
                return


def test_a_forced_passage_is_journaled_shown_and_counted(turnstile: KioskGate) -> None:
    found: list[str] = []
    ready = threading.Event()
    listener = threading.Thread(target=stream, args=(turnstile, found, ready), daemon=True)
    listener.start()
    assert ready.wait(WAIT)
    push(turnstile)  # nobody was let through
    wait_for(lambda: entries(turnstile), "the alarm's journal entry")
    [alarm] = entries(turnstile)
    assert (alarm["reason"], alarm["result"], alarm["upload_state"], alarm["role"]) == \
        ("PASSAGE_FORCED", "FAIL", "local", "gate")
    listener.join(WAIT)
    assert "alarm" in found and any(alarm["scan_id"] in line for line in found)
    metrics = loopback.get(turnstile.url + "/metrics").text
    assert 'gate_passage_alarms_total{kind="PASSAGE_FORCED"} 1.0' in metrics


def test_a_passage_after_a_grant_raises_no_alarm(turnstile: KioskGate) -> None:
    turnstile.read(turnstile.valid_barcodes(1)[0])
    wait_for(lambda: turnstile.stage.waiting_for_passage == 1, "the grant to wait")
    push(turnstile)
    wait_for(lambda: entries(turnstile)[0]["passed"] is True, "the passage")
    assert [e["reason"] for e in entries(turnstile)] == ["GRANTED"]


@pytest.mark.slow
def test_a_passage_held_open_is_an_alarm_once(turnstile: KioskGate) -> None:
    turnstile.read(turnstile.valid_barcodes(1)[0])
    turnstile.outputs.factory.pin(PASSAGE).drive_low()  # in, and stuck there
    wait_for(lambda: any(e["reason"] == "PASSAGE_HELD" for e in entries(turnstile)),
             "the held-open alarm", timeout=4)
    time.sleep(1.2)
    assert [e["reason"] for e in entries(turnstile)].count("PASSAGE_HELD") == 1
    turnstile.outputs.factory.pin(PASSAGE).drive_high()


def test_a_manual_release_is_journaled_opens_the_gate_and_its_passage_is_no_alarm(
        turnstile: KioskGate) -> None:
    relay = turnstile.outputs.relay.pin
    relay.clear_states()
    reply = login(turnstile, STEWARD_PIN).post("/api/release", json={})
    assert reply.status_code == 200
    wait_for(lambda: rises(relay) == 1, "the relay")
    wait_for(lambda: turnstile.stage.waiting_for_passage == 1, "the release to wait")
    push(turnstile)
    wait_for(lambda: entries(turnstile)[0]["passed"] is True, "the passage")
    assert [(e["reason"], e["role"]) for e in entries(turnstile)] == \
        [("MANUAL_RELEASE", "steward")]
    assert loopback.post(turnstile.url + "/api/release", json={}).status_code == 401


# -- manual release under the venue's orders -------------------------------------------------

@pytest.fixture
def ordered(tmp_path: Path, sim_server: SimServer) -> Iterator[tuple[KioskGate, list[Mode]]]:
    """A gate whose venue orders are the mode in the list (as a CommandBook's fold gives)."""
    mode = [Mode.LOCKDOWN]
    with KioskGate(tmp_path, sim_server, web(tmp_path), pins={"passage_pin": PASSAGE},
                   orders=lambda: VenueOrders(mode[0])) as gate:
        pins(gate, tmp_path)
        yield gate, mode


def test_a_stewards_manual_release_in_lockdown_is_refused_journaled_and_opens_nothing(
        ordered: tuple[KioskGate, list[Mode]]) -> None:
    kg, _mode = ordered
    relay = kg.outputs.relay.pin
    relay.clear_states()
    reply = login(kg, STEWARD_PIN).post("/api/release", json={})
    assert reply.status_code == 403
    assert reply.json()["error"] == ("the venue is in lockdown: only the supervisor may "
                                     "release the gate")
    [refused] = entries(kg)
    assert (refused["reason"], refused["role"], refused["why"], refused["upload_state"]) == \
        ("RELEASE_REFUSED", "steward", "LOCKDOWN", "local")
    time.sleep(0.3)
    assert rises(relay) == 0 and kg.stage.waiting_for_passage == 0


def test_a_supervisors_manual_release_in_lockdown_opens_and_is_journaled_as_an_override(
        ordered: tuple[KioskGate, list[Mode]]) -> None:
    kg, _mode = ordered
    relay = kg.outputs.relay.pin
    relay.clear_states()
    assert login(kg, SUPERVISOR_PIN).post("/api/release", json={}).status_code == 200
    wait_for(lambda: rises(relay) == 1, "the relay")
    [released] = entries(kg)
    assert (released["reason"], released["role"], released["why"]) == \
        ("MANUAL_RELEASE", "supervisor", "LOCKDOWN_OVERRIDDEN")


def test_a_stewards_manual_release_in_free_egress_is_a_release_as_always(
        ordered: tuple[KioskGate, list[Mode]]) -> None:
    kg, mode = ordered
    mode[0] = Mode.EGRESS
    assert login(kg, STEWARD_PIN).post("/api/release", json={}).status_code == 200
    [released] = entries(kg)
    assert (released["reason"], released["role"], released["why"]) == \
        ("MANUAL_RELEASE", "steward", None)


# -- roles -----------------------------------------------------------------------------------

def set_pin(tmp_path: Path, pin: str, *args: str) -> Any:
    import subprocess
    import sys

    config = write_toml(tmp_path / "gate.toml", {"web": {
        "pin_file": str(tmp_path / "steward.pin"),
        "supervisor_pin_file": str(tmp_path / "supervisor.pin")}})
    return subprocess.run([sys.executable, "-m", "scanner.cli.main", "--config", str(config),
                           "kiosk", "set-pin", "--stdin", *args], input=pin + "\n", text=True,
                          capture_output=True, timeout=60, check=False)


@pytest.mark.slow
def test_set_pin_supervisor_writes_the_supervisors_file_and_refuses_the_stewards_pin(
        tmp_path: Path) -> None:
    from scanner.kiosk.auth import PinHash

    assert set_pin(tmp_path, "2468").returncode == 0
    same = set_pin(tmp_path, "2468", "--supervisor")
    assert same.returncode == 2 and "must differ" in same.stderr
    assert not (tmp_path / "supervisor.pin").exists()
    done = set_pin(tmp_path, "97531", "--supervisor")
    assert done.returncode == 0, done.stderr
    stored = PinHash.load(tmp_path / "supervisor.pin")
    assert stored is not None and stored.matches("97531")


@pytest.mark.slow
def test_the_supervisors_pin_opens_a_supervisor_session_and_the_stewards_a_stewards(
        kg: KioskGate) -> None:
    for pin, role in ((STEWARD_PIN, "steward"), (SUPERVISOR_PIN, "supervisor")):
        assert login(kg, pin).get("/api/desk").json()["role"] == role


# -- the venue mesh --------------------------------------------------------------------------

def test_overrides_and_alarms_reach_the_mesh_as_records_a_peer_accepts(kg: KioskGate) -> None:
    """The control room lists them from the records every gate shares."""
    from scanner.mesh.hlc import HybridClock
    from scanner.mesh.message import Batch, Codec, scans_topic
    from scanner.mesh.peer_journal import MeshStore

    denied = kg.read("NOSUCHCODE44")
    login(kg, SUPERVISOR_PIN).post("/api/override",
                                   json={"scan_id": denied.scan_id, "why": "OTHER"})
    kg.desk.alarm(Reason.PASSAGE_FORCED)
    records = MeshStore(kg.gate.journal_engine, "g1").stamp_journal(HybridClock("g1"))
    assert [(r.reason, r.result) for r in records] == [
        ("UNKNOWN_BARCODE", "FAIL"), ("OVERRIDDEN", "OK"), ("PASSAGE_FORCED", "FAIL")]
    codec = Codec(b"k" * 32)
    batches = [codec.decode(scans_topic("g1"), p) for p in codec.records("g1", records)]
    assert all(isinstance(b, Batch) for b in batches)
    heard = tuple(r for b in batches for r in b.records)  # type: ignore[union-attr]
    assert heard == tuple(records)
    scan, override, alarm = heard
    assert scan.role is None
    assert (override.role, override.why, override.answers) == ("supervisor", "OTHER",
                                                                denied.scan_id)
    assert override.session and len(override.session) == 8  # a tag, never the session
    assert (alarm.role, alarm.why) == ("gate", "PASSAGE_FORCED")
    store = MeshStore(kg.gate.journal_engine, "g1")
    assert store.local_range(1, 3) == list(records)  # a replay carries who and why too


def test_a_stopping_lane_refuses_its_held_ticket_at_once(held: KioskGate) -> None:
    worker = Lane("main", held.gate.gatekeeper, held.desk.submit, heartbeat_timeout=30,
                  interrupted=held.desk.holds.close)
    worker.start()
    worker.offer(LaneRead(discounted(held), Direction.IN, "handheld"))
    wait_for(lambda: held.desk.holds.pending(), "the ticket to be held")
    worker.stop()
    assert worker.join(0.5)
    assert held_rows(held) == [("ACTION_REQUIRED", "FAIL"), ("NOT_CONFIRMED", "FAIL")]
    assert entries(held)[1]["why"] == "STOPPING"


def test_a_held_ticket_the_gate_could_not_act_on_leaves_no_hold_for_the_button(
        held: KioskGate, monkeypatch: pytest.MonkeyPatch) -> None:
    """The act stage refusing a held ticket ends its hold: the wired button, which answers
    the oldest held ticket, must not answer a ticket nobody is shown any more."""
    result = held.gate.gatekeeper.check(discounted(held), Direction.IN, source="kiosk")
    assert result.decision.reason is Reason.ACTION_REQUIRED

    def refused(*_args: object) -> bool:
        raise RuntimeError("the act stage is stopping")

    monkeypatch.setattr(held.desk, "_submit", refused)
    with pytest.raises(RuntimeError):
        held.desk.submit(result)
    assert held.desk.holds.pending() == []
    assert not held.desk.holds.answer(None, Answer.CONFIRM, Who("button"))
