"""Venue commands on the in-memory hub: who obeys what, replays, forgeries, offline gates,
keys, durability and the relay under free egress. Workers are stepped by hand unless a
test is about the thread (the wait before a decision)."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kits.gate import build_gate
from kits.journal import make_ticket
from kits.venue import ZONES, Supervisor, VenueGate

from scanner.app.kiosk import from_gate
from scanner.cli.main import main
from scanner.config import MeshConfig, OutputsConfig, load_config, toml
from scanner.decide.model import Direction, Reason
from scanner.decide.orders import Mode
from scanner.errors import ConfigError
from scanner.kiosk.parts import WebOptions
from scanner.kiosk.server import KioskServer
from scanner.mesh.broker import Inbox
from scanner.mesh.memory_broker import MemoryHub
from scanner.mesh.message import Codec
from scanner.status import gather
from scanner.venue.channel import command_topic
from scanner.venue.command import Command, Kind, Refused, Scope, new_command, parse, topic_part
from scanner.venue.fold import Place, fold
from scanner.venue.signing import Signer, keygen

VENUE_KEY = b"venue-key-for-tests-0123456789"


@pytest.fixture
def supervisor(tmp_path: Path) -> Supervisor:
    return Supervisor(tmp_path / "keys")


@pytest.fixture
def hub() -> MemoryHub:
    return MemoryHub()


@pytest.fixture
def venue(tmp_path: Path, supervisor: Supervisor, hub: MemoryHub) -> Iterator[dict[str, VenueGate]]:
    gates = {gid: VenueGate(tmp_path / gid, gid, supervisor.public, hub, zone=zone)
             for gid, zone in (("n1", "north"), ("n2", "north"), ("s1", "south"))}
    for g in gates.values():
        g.worker.open()
        g.settle()
    yield gates
    for g in gates.values():
        g.close()


def settle(gates: dict[str, VenueGate]) -> None:
    for _ in range(3):  # a digest, an ask, an answer
        for g in gates.values():
            g.settle()


def reasons(gates: dict[str, VenueGate], n: int,
            direction: Direction = Direction.IN) -> dict[str, Reason]:
    return {gid: g.check(n, direction).decision.reason for gid, g in gates.items()}


def test_stop_entry_for_a_zone_stops_exactly_its_gates_and_resume_undoes_it(
        venue: dict[str, VenueGate], supervisor: Supervisor, hub: MemoryHub) -> None:
    supervisor.issue(hub, Kind.STOP_ENTRY, Scope.ZONE, "north")
    settle(venue)
    assert reasons(venue, 1) == {"n1": Reason.ENTRY_STOPPED, "n2": Reason.ENTRY_STOPPED,
                                 "s1": Reason.GRANTED}
    supervisor.issue(hub, Kind.RESUME, Scope.ZONE, "north")
    settle(venue)
    assert reasons(venue, 2) == {"n1": Reason.GRANTED, "n2": Reason.GRANTED,
                                 "s1": Reason.GRANTED}


def test_entry_stopped_still_lets_people_out(venue: dict[str, VenueGate],
                                              supervisor: Supervisor, hub: MemoryHub) -> None:
    gate = venue["n1"]
    assert gate.check(1).decision.granted
    supervisor.issue(hub, Kind.STOP_ENTRY, Scope.GATE, "n1")
    settle(venue)
    assert gate.check(2).decision.reason is Reason.ENTRY_STOPPED
    assert gate.check(1, Direction.OUT).decision.reason is Reason.CHECKED_OUT
    assert venue["n2"].check(2).decision.granted  # one gate named: only that one


def test_lockdown_refuses_both_ways_and_a_venue_resume_ends_it(
        venue: dict[str, VenueGate], supervisor: Supervisor, hub: MemoryHub) -> None:
    assert venue["s1"].check(1).decision.granted
    supervisor.issue(hub, Kind.LOCKDOWN)
    settle(venue)
    assert set(reasons(venue, 2).values()) == {Reason.LOCKDOWN}
    assert venue["s1"].check(1, Direction.OUT).decision.reason is Reason.LOCKDOWN
    supervisor.issue(hub, Kind.RESUME)
    settle(venue)
    assert venue["s1"].check(1, Direction.OUT).decision.reason is Reason.CHECKED_OUT


def test_a_block_refuses_entry_everywhere_by_barcode_or_ticket_id_and_unblock_undoes_it(
        venue: dict[str, VenueGate], supervisor: Supervisor, hub: MemoryHub) -> None:
    supervisor.issue(hub, Kind.BLOCK, Scope.TICKET, make_ticket(1).barcode, "lost card")
    supervisor.issue(hub, Kind.BLOCK, Scope.TICKET, make_ticket(2).id, "banned")
    settle(venue)
    first = venue["n1"].check(1).decision
    assert (first.reason, first.message) == (Reason.BLOCKED, "Blocked by supervisor: lost card")
    assert reasons(venue, 2) == dict.fromkeys(venue, Reason.BLOCKED)
    assert venue["s1"].check(3).decision.granted
    supervisor.issue(hub, Kind.UNBLOCK, Scope.TICKET, make_ticket(1).barcode)
    settle(venue)
    assert venue["n2"].check(1).decision.granted


def test_a_gate_offline_during_a_block_refuses_the_ticket_at_its_first_decision_back(
        venue: dict[str, VenueGate], supervisor: Supervisor, hub: MemoryHub) -> None:
    """The worker runs on its thread: the check right after the network heals waits for the
    retained command the broker hands over, it does not race it."""
    gate = venue["s1"]
    gate.worker.start()
    hub.partition(gate.client_id)
    supervisor.issue(hub, Kind.BLOCK, Scope.TICKET, make_ticket(1).barcode, "banned")
    assert gate.check(2).decision.granted  # alone, it knows nothing of the block yet
    hub.heal(gate.client_id)
    assert gate.check(1).decision.reason is Reason.BLOCKED


def test_a_gate_back_after_the_broker_lost_its_retained_commands_learns_them_from_a_peer(
        venue: dict[str, VenueGate], supervisor: Supervisor, hub: MemoryHub) -> None:
    """A broker restarted without persistence keeps nothing: the peers that hold the
    signed command pass it on (anti-entropy), before the gate's first decision."""
    away, peers = venue["s1"], {k: g for k, g in venue.items() if k != "s1"}
    hub.partition(away.client_id)
    supervisor.issue(hub, Kind.STOP_ENTRY)
    settle(peers)
    hub.stop()
    hub.start()
    settle(peers)  # the peers announce their digests again
    for gate in venue.values():
        gate.worker.start()  # the peers answer on their threads while s1 decides
    hub.heal(away.client_id)
    assert away.check(1).decision.reason is Reason.ENTRY_STOPPED


@pytest.mark.parametrize("forgery", ["venue_hmac", "other_ed25519", "tampered"])
def test_a_command_not_signed_by_the_supervisor_key_is_dropped_and_counted(
        venue: dict[str, VenueGate], supervisor: Supervisor, hub: MemoryHub, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, forgery: str) -> None:
    command = new_command(Kind.STOP_ENTRY, Scope.VENUE, "", issuer=supervisor.signer.issuer,
                          seq=10**13, issued_at="2030-01-23T19:00:00.000Z")
    if forgery == "venue_hmac":  # every gate holds this key: it orders nothing
        payload = Codec(VENUE_KEY)._seal("command", command.body())
    elif forgery == "other_ed25519":
        other = Signer(keygen(tmp_path / "other")[0])
        payload = other.seal(new_command(Kind.STOP_ENTRY, Scope.VENUE, "", issuer=other.issuer,
                                         seq=10**13, issued_at="2030-01-23T19:00:00.000Z"))
    else:
        sealed = orjson.loads(supervisor.signer.seal(command))
        sealed["command"]["kind"] = Kind.LOCKDOWN.value
        payload = orjson.dumps(sealed)
    intruder = hub.broker("intruder")
    intruder.connect(Inbox())
    with caplog.at_level(logging.WARNING, logger="scanner.venue"):
        intruder.publish(command_topic(topic_part(Scope.VENUE, "")), payload, retain=True)
        settle(venue)
    gate = venue["n1"]
    assert gate.check(1).decision.granted
    assert sum(gate.book.dropped.values()) == 1
    assert next(r for r in caplog.records if r.name == "scanner.venue"
            and "dropped" in r.getMessage()).getMessage().count("\n") == 0
    metrics = _metrics(gate)
    cause = {"venue_hmac": "unsigned", "other_ed25519": "bad_signature",
             "tampered": "bad_signature"}[forgery]
    assert metrics[("gate_venue_commands_dropped_total", cause)] == 1.0


def _kiosk(gate: VenueGate) -> KioskServer:
    """The gate's kiosk as ``gate run`` wires it (not started: nothing is served)."""
    return from_gate(gate.gate, gate.gate.act, WebOptions(), health=lambda: (True, []))


def _metrics(gate: VenueGate) -> dict[tuple[str, str], float]:
    """The gate's /metrics samples, as a scrape sees them, by name and cause or mode."""
    from prometheus_client.parser import text_string_to_metric_families

    text = _kiosk(gate).metrics.render().decode()
    return {(s.name, s.labels.get("cause", s.labels.get("mode", ""))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_kiosk_shows_the_ordered_mode_and_metrics_count_it(
        venue: dict[str, VenueGate], supervisor: Supervisor, hub: MemoryHub) -> None:
    supervisor.issue(hub, Kind.FREE_EGRESS)
    settle(venue)
    for gate in venue.values():
        banners = _kiosk(gate)._state(False)["banners"]
        assert [(b["kind"], b["key"]) for b in banners] == [("venue", "banner.venue_egress")]
        metrics = _metrics(gate)
        assert metrics[("gate_venue_mode", "egress")] == 1.0
        assert metrics[("gate_venue_commands_applied_total", "")] == 1.0


def test_a_replayed_command_is_refused(venue: dict[str, VenueGate], supervisor: Supervisor,
                                       hub: MemoryHub) -> None:
    """The same signed stop sent again after the resume (a replay by anyone who recorded
    it) changes nothing: its slot holds a newer command."""
    stop = supervisor.issue(hub, Kind.STOP_ENTRY)
    captured = next(p for t, p in hub.published if t.startswith("venue/commands/")
                and orjson.loads(p)["command"]["id"] == stop.id)
    supervisor.issue(hub, Kind.RESUME)
    settle(venue)
    replayer = hub.broker("replayer")
    replayer.connect(Inbox())
    replayer.publish(command_topic(topic_part(Scope.VENUE, "")), captured)
    settle(venue)
    gate = venue["n1"]
    assert gate.check(1).decision.granted
    assert gate.book.refused["superseded"] == 1
    assert gate.book.store.apply(stop, captured, "now").value == "already_applied"
    assert len(gate.book.store.history()) == 2


def test_orders_are_kept_and_obeyed_after_a_restart(tmp_path: Path, supervisor: Supervisor,
                                                    hub: MemoryHub) -> None:
    gate = VenueGate(tmp_path / "g", "g1", supervisor.public, hub)
    gate.worker.open()
    gate.settle()
    supervisor.issue(hub, Kind.STOP_ENTRY, reason="crowd at the gate")
    gate.settle()
    gate.close()
    again = build_gate(tmp_path / "g", gate_id="g1",
                       mesh=MeshConfig(supervisor_key=str(supervisor.public)))
    try:
        assert again.gatekeeper.check(make_ticket(1).barcode,
                                      Direction.IN).decision.reason is Reason.ENTRY_STOPPED
        assert again.venue_book is not None
        assert again.venue_book.state()["last"]["reason"] == "crowd at the gate"
        status = gather(again)["venue"]  # gate status --json
        assert (status["mode"], status["connected"]) == ("stopped", None)
    finally:
        again.close()


def test_free_egress_holds_every_relay_open_and_resume_lets_it_close(
        tmp_path: Path, supervisor: Supervisor, hub: MemoryHub) -> None:
    from gpiozero.pins.mock import MockFactory

    gates = []
    for gid in ("e1", "e2"):
        gate = VenueGate(tmp_path / gid, gid, supervisor.public, hub, outputs=OutputsConfig(
            pin_factory="mock", relay_pin=17, fire_alarm_pin=27))
        gate.gate.outputs.factory.pin(27).drive_low()  # the fire loop is closed: no alarm
        gate.gate.act.start()
        gate.worker.open()
        gate.settle()
        gates.append(gate)
    try:
        supervisor.issue(hub, Kind.FREE_EGRESS)
        for gate in gates:
            gate.settle()
        outputs = [g.gate.outputs for g in gates]
        assert all(o.relay_open and o.egress for o in outputs)
        result = gates[0].check(1)  # IN is refused, and still journaled
        assert result.decision.reason is Reason.ENTRY_STOPPED
        assert gates[0].gate.journal.history(make_ticket(1).id).scans == ()
        out = gates[0].check(2, Direction.OUT)
        gates[0].gate.act.submit(out)
        assert outputs[0].relay_open
        factory = outputs[1].factory
        assert isinstance(factory, MockFactory)
        factory.pin(27).drive_high()  # the fire loop opens: a fire alarm on top of egress
        supervisor.issue(hub, Kind.RESUME)
        for gate in gates:
            gate.settle()
        assert not outputs[0].relay_open  # egress over
        assert outputs[1].relay_open      # the fire alarm still holds this one
    finally:
        for gate in gates:
            gate.gate.act.stop()
            gate.close()


def test_keygen_writes_a_private_key_for_its_owner_alone_and_never_overwrites(
        tmp_path: Path) -> None:
    private, public = keygen(tmp_path / "k")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert b"BEGIN PRIVATE KEY" in private.read_bytes()
    assert b"BEGIN PUBLIC KEY" in public.read_bytes()
    with pytest.raises(ConfigError, match="exists already"):
        keygen(tmp_path / "k")
    private.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Signer(private)


def test_keygen_into_a_folder_that_cannot_be_made_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert main(["venue", "keygen", str(blocker / "keys")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"gate: configuration error: {blocker / 'keys'}: cannot create: Not a directory"]


# -- the fold and the command's checks, without a broker -------------------------------

def _cmd(kind: Kind, scope: Scope = Scope.VENUE, target: str = "", seq: int = 1) -> Command:
    return Command(f"00000000-0000-4000-8000-{seq:012d}", "k", seq, "t", kind, scope, target,
                   "why")


NORTH = Place("n1", ("north",))


@pytest.mark.parametrize(("commands", "mode"), [
    ([_cmd(Kind.STOP_ENTRY, seq=1), _cmd(Kind.RESUME, Scope.ZONE, "north", 2)], Mode.NORMAL),
    ([_cmd(Kind.STOP_ENTRY, Scope.GATE, "n1", 1), _cmd(Kind.RESUME, seq=2)], Mode.NORMAL),
    ([_cmd(Kind.RESUME, seq=2), _cmd(Kind.STOP_ENTRY, Scope.GATE, "n1", 1)], Mode.NORMAL),
    ([_cmd(Kind.STOP_ENTRY, Scope.ZONE, "south", 1)], Mode.NORMAL),
    ([_cmd(Kind.STOP_ENTRY, seq=1), _cmd(Kind.LOCKDOWN, Scope.ZONE, "north", 2)],
     Mode.LOCKDOWN),
    ([_cmd(Kind.FREE_EGRESS, seq=1), _cmd(Kind.LOCKDOWN, Scope.GATE, "n1", 2)], Mode.EGRESS),
    ([_cmd(Kind.FREE_EGRESS, seq=1), _cmd(Kind.RESUME, Scope.GATE, "n1", 2)], Mode.NORMAL),
], ids=["zone-resume-after-venue-stop", "venue-resume-after-gate-stop", "order-by-seq",
        "other-zone", "lockdown-over-stop", "egress-not-closed-by-lockdown",
        "egress-ended-by-resume"])
def test_the_latest_order_that_reaches_a_gate_wins_but_only_resume_ends_egress(
        commands: list[Command], mode: Mode) -> None:
    assert fold(commands, NORTH).mode is mode


@pytest.mark.parametrize("body", [
    {"kind": "block", "scope": "ticket", "target": "BC1", "reason": ""},
    {"kind": "stop_entry", "scope": "ticket", "target": "BC1"},
    {"kind": "block", "scope": "venue", "target": "", "reason": "x"},
    {"kind": "stop_entry", "scope": "venue", "target": "x"},
    {"kind": "stop_entry", "scope": "gate", "target": "a/b"},
    {"kind": "shutdown"},
    {"seq": 0},
    {"seq": True},
    {"reason": "two\nlines"},
    {"extra": 1},
])
def test_a_command_that_is_not_exactly_right_is_refused(body: dict[str, object]) -> None:
    good = _cmd(Kind.STOP_ENTRY).body()
    with pytest.raises(Refused):
        parse(good | body)


# -- a gate's place: its zone and the zones around it --------------------------------------

def test_a_gates_place_is_its_zone_and_the_zones_around_it(tmp_path: Path,
                                                           supervisor: Supervisor) -> None:
    gate = build_gate(tmp_path, zone="lounge", zones=ZONES,
                      mesh=MeshConfig(supervisor_key=str(supervisor.public)))
    try:
        assert gate.venue_book is not None
        assert gate.venue_book.place == Place("g1", ("lounge", "stand", "north", "grounds"))
    finally:
        gate.close()


def test_without_a_zone_key_the_gates_place_follows_the_scan_zone_of_me(
        tmp_path: Path, supervisor: Supervisor) -> None:
    gate = build_gate(tmp_path, zones=ZONES,
                      mesh=MeshConfig(supervisor_key=str(supervisor.public)))
    try:
        gate.store.save_settings({"scanZoneId": "stand"})
        assert gate.venue_book is not None
        assert gate.venue_book.place == Place("g1", ("stand", "north", "grounds"))
    finally:
        gate.close()


def test_a_zone_command_reaches_the_gates_of_the_zones_inside_it(
        tmp_path: Path, supervisor: Supervisor, hub: MemoryHub) -> None:
    gates = {gid: VenueGate(tmp_path / gid, gid, supervisor.public, hub, zone=zone)
             for gid, zone in (("n1", "north"), ("l1", "lounge"), ("s1", "south"))}
    try:
        for g in gates.values():
            g.worker.open()
            g.settle()
        supervisor.issue(hub, Kind.STOP_ENTRY, Scope.ZONE, "north")
        settle(gates)
        assert reasons(gates, 1) == {"n1": Reason.ENTRY_STOPPED, "l1": Reason.ENTRY_STOPPED,
                                     "s1": Reason.GRANTED}
    finally:
        for g in gates.values():
            g.close()


def test_the_old_mesh_zone_key_says_where_it_moved(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text('[mesh]\nzone = "north"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^mesh\.zone: moved to the top-level zone key"):
        load_config(path, env={})


def test_gate_venue_refuses_a_zone_the_configuration_does_not_declare(
        tmp_path: Path, supervisor: Supervisor, capsys: pytest.CaptureFixture[str]) -> None:
    """A typo would reach no gate and still say "sent"."""
    key = tmp_path / "mesh.key"
    key.write_bytes(VENUE_KEY)
    key.chmod(0o600)
    config = tmp_path / "supervisor.toml"
    config.write_text(toml.dumps({"db": str(tmp_path / "sup.db"), "zones": ZONES,
                                  "mesh": {"url": "mqtt://127.0.0.1:1",
                                           "key_file": str(key)}}), encoding="utf-8")
    code = main(["--config", str(config), "venue", "stop-entry", "--zone", "stnad",
                 "--key", str(supervisor.private)])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "gate: configuration error: --zone: 'stnad' is not one of the [[zones]] (grounds, "
        "north, stand, lounge, south, west)"]


@pytest.mark.parametrize(("content", "said"), [
    (None, r"is larger than 16384 bytes: not a PEM public key$"),  # /dev/zero
    (b"not a key at all\n", r"is not a PEM public key$"),
    ("private", r"is not a PEM public key$"),  # the private key where the public belongs
])
def test_a_supervisor_key_that_is_no_ed25519_public_key_is_one_config_line(
        tmp_path: Path, supervisor: Supervisor, content: bytes | str | None, said: str) -> None:
    from scanner.venue.signing import Verifier

    if content is None:
        path = Path("/dev/zero")
    elif content == "private":
        path = supervisor.private
    else:
        path = tmp_path / "key.pem"
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=rf"^mesh\.supervisor_key: {path} {said}"):
        Verifier.from_file(path)


def test_an_envelope_too_deeply_nested_to_check_is_dropped_and_the_worker_goes_on(
        venue: dict[str, VenueGate], supervisor: Supervisor, hub: MemoryHub) -> None:
    """A peer's answer holding an envelope nested deeper than a signature check can
    serialise is dropped as malformed: it never takes the venue worker down, so the next
    command is obeyed (the answer was retained: a restarted worker would hear it again)."""
    gate = venue["n1"]
    deep = b'{"command": {"reason": ' + b"[" * 300 + b"]" * 300 + b'}, "sig": "AA=="}'
    liar = hub.broker("gate-liar-venue")
    liar.connect(Inbox())
    liar.publish("gates/liar/venue/given/n1", orjson.dumps({"envelopes": [deep.decode()]}),
                 retain=True)
    gate.settle()
    assert gate.book.dropped["malformed"] == 1
    supervisor.issue(hub, Kind.STOP_ENTRY)
    gate.settle()
    assert gate.check(1).decision.reason is Reason.ENTRY_STOPPED


def test_a_flood_of_asks_is_answered_once_a_second_not_once_an_ask(
        venue: dict[str, VenueGate], supervisor: Supervisor, hub: MemoryHub) -> None:
    """An ask is a few bytes and its answer every command the gate holds: a peer asking
    in a loop must not have the gate (and the broker) send all of them for each."""
    from scanner.venue.channel import ANSWER_GAP

    for n in range(1, 4):
        supervisor.issue(hub, Kind.BLOCK, Scope.TICKET, make_ticket(n).barcode, "banned")
    settle(venue)
    gate, now = venue["n1"], [0.0]
    gate.worker.clock = lambda: now[0]
    liar = hub.broker("gate-liar-venue")
    liar.connect(Inbox())
    answers = "gates/n1/venue/given/liar"
    for _ in range(2):  # an ask, then a flood within the gap
        for _ in range(50):
            liar.publish("gates/liar/venue/ask/n1", b"{}")
        gate.settle()
        assert [t for t, _ in hub.published].count(answers) == 1
    now[0] += ANSWER_GAP
    gate.worker.step(0)  # the asks that came meanwhile: one more answer, all of it
    given = [p for t, p in hub.published if t == answers]
    assert len(given) == 2 and len(orjson.loads(given[-1])["envelopes"]) == 3
