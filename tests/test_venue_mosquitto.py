"""Venue commands end to end: the real ``gate venue`` command, a real mosquitto with the
shipped ACL and password file, gates' workers on paho threads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kits.gate import build_gate, write_toml
from kits.journal import make_ticket
from kits.mesh import KEY, Broker, CutProxy, wait_for
from kits.venue import SUPERVISOR, ZONES, Supervisor, VenueGate
from kits.waiting import within_a_second

from scanner.config import MeshConfig
from scanner.decide.model import Direction, Reason
from scanner.decide.orders import Mode
from scanner.mesh.broker import Inbox
from scanner.mesh.localbroker import password
from scanner.mesh.message import Codec
from scanner.mesh.paho_broker import PahoBroker
from scanner.venue.channel import VenueWorker, command_topic
from scanner.venue.command import Kind, Scope, new_command, topic_part
from scanner.venue.signing import Signer, keygen

GATES = {"n1": "north", "t1": "stand", "t2": "stand", "l1": "lounge", "s1": "south"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path / "broker", [*GATES, "s2", "w1", SUPERVISOR]).start()
    yield broker
    broker.stop()


@pytest.fixture
def supervisor(tmp_path: Path) -> Supervisor:
    return Supervisor(tmp_path / "keys")


def secret_files(folder: Path, user: str) -> tuple[Path, Path]:
    """The venue key and ``user``'s broker credentials, each in its own 0600 file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("mesh.key", KEY.decode()),
                       ("mesh.credentials", f"{user}:{password(user)}")):
        (folder / name).write_text(text)
        (folder / name).chmod(0o600)
    return folder / "mesh.key", folder / "mesh.credentials"


@pytest.fixture
def config(tmp_path: Path, broker: Broker) -> Path:
    """The supervisor machine's configuration: the broker, as its supervisor user."""
    secrets = tmp_path / "secrets"
    secret_files(secrets, SUPERVISOR)
    return write_toml(tmp_path / "supervisor.toml", {
        "db": str(tmp_path / "sup.db"),
        "mesh": {"url": broker.url, "key_file": str(secrets / "mesh.key"),
                 "credentials_file": str(secrets / "mesh.credentials")}})


def gate_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    return subprocess.run([sys.executable, "-m", "scanner.cli.main", "--config", str(config),
                           *args], capture_output=True, text=True, env=env, timeout=60)


def running(gates: list[VenueGate]) -> list[VenueGate]:
    for gate in gates:
        gate.worker.start()
    for gate in gates:
        assert wait_for(gate.book.settled.is_set) and wait_for(gate.worker.connected.is_set)
    return gates


@pytest.fixture
def venue(tmp_path: Path, supervisor: Supervisor, broker: Broker) -> Iterator[list[VenueGate]]:
    gates = running([VenueGate(tmp_path / g, g, supervisor.public, broker, zone=z)
                     for g, z in GATES.items()])
    yield gates
    for gate in gates:
        gate.close()


@pytest.mark.slow
def test_stop_entry_for_a_zone_stops_exactly_its_gates_and_its_childrens_within_a_second(
        venue: list[VenueGate], supervisor: Supervisor, config: Path) -> None:
    """The stand's gates and the lounge's (inside the stand) stop; north's (around the
    stand) and south's do not; resume undoes it."""
    stand = [g for g in venue if GATES[g.gate_id] in ("stand", "lounge")]

    def stop(n: int) -> float:
        if n > 1:  # undo the last try first
            resumed = gate_cli(config, "venue", "resume", "--zone", "stand", "--key",
                               str(supervisor.private))
            assert resumed.returncode == 0, resumed.stderr
            assert wait_for(lambda: all(g.book.orders().mode is Mode.NORMAL for g in stand),
                            5.0)
        done = gate_cli(config, "venue", "stop-entry", "--zone", "stand", "--key",
                        str(supervisor.private), "--reason", "crush at the stand")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("sent: stop_entry for zone 'stand'")
        sent = time.monotonic()
        assert wait_for(lambda: all(g.book.orders().mode is Mode.STOPPED for g in stand), 5.0)
        return time.monotonic() - sent

    seconds, _ = within_a_second(stop, tries=3)
    assert seconds < 1.0
    assert {g.gate_id: g.check(1).decision.reason for g in venue} == {
        "n1": Reason.GRANTED, "t1": Reason.ENTRY_STOPPED, "t2": Reason.ENTRY_STOPPED,
        "l1": Reason.ENTRY_STOPPED, "s1": Reason.GRANTED}
    assert all(g.book.orders().mode is Mode.NORMAL for g in venue if g not in stand)
    done = gate_cli(config, "venue", "resume", "--zone", "stand", "--key",
                    str(supervisor.private))
    assert done.returncode == 0, done.stderr
    assert wait_for(lambda: all(g.book.orders().mode is Mode.NORMAL for g in stand), 5.0)
    assert {g.gate_id: g.check(2).decision.reason for g in venue} == dict.fromkeys(
        GATES, Reason.GRANTED)


@pytest.mark.slow
def test_a_gate_cut_off_during_a_block_refuses_the_ticket_at_its_first_decision_back(
        tmp_path: Path, venue: list[VenueGate], supervisor: Supervisor, broker: Broker,
        config: Path) -> None:
    proxy = CutProxy(broker.port)
    away = running([VenueGate(tmp_path / "s2", "s2", supervisor.public, broker, zone="south",
                              url=proxy.url)])[0]
    try:
        proxy.cut()
        assert wait_for(lambda: not away.worker.connected.is_set())
        done = gate_cli(config, "venue", "block", make_ticket(1).barcode, "--reason",
                        "stolen ticket", "--key", str(supervisor.private))
        assert done.returncode == 0, done.stderr
        assert away.check(2).decision.granted  # cut off, it cannot know yet
        proxy.mend()
        assert wait_for(away.worker.connected.is_set)
        decision = away.check(1).decision
        assert (decision.reason, decision.message) == (
            Reason.BLOCKED, "Blocked by supervisor: stolen ticket")
    finally:
        away.close()
        proxy.close()


@pytest.mark.parametrize("forgery", ["venue_hmac", "other_ed25519"])
def test_a_command_signed_with_another_key_is_dropped_and_counted(
        venue: list[VenueGate], supervisor: Supervisor, broker: Broker, tmp_path: Path,
        forgery: str) -> None:
    other = Signer(keygen(tmp_path / "other")[0])
    command = new_command(Kind.LOCKDOWN, Scope.VENUE, "", issuer=other.issuer, seq=10**13,
                          issued_at="2030-01-23T19:00:00.000Z")
    payload = Codec(KEY)._seal("command", command.body()) if forgery == "venue_hmac" \
        else other.seal(command)
    client = PahoBroker(broker.settings(SUPERVISOR), "intruder")
    client.connect(Inbox())
    try:
        assert wait_for(lambda: client._client is not None and client._client.is_connected())
        client.publish(command_topic(topic_part(Scope.VENUE, "")), payload, retain=True)
    finally:
        client.close()
    assert wait_for(lambda: all(sum(g.book.dropped.values()) == 1 for g in venue))
    assert all(g.check(1).decision.granted for g in venue)


def test_a_gate_built_from_its_configuration_obeys_commands_on_its_own_connection(
        tmp_path: Path, broker: Broker, supervisor: Supervisor) -> None:
    """What gate run builds: [mesh] supervisor_key and the gate's zone give the gatekeeper
    its orders and the supervisor a ``venue`` worker on a connection of its own."""
    key, credentials = secret_files(tmp_path / "w1-secrets", "w1")
    gate = build_gate(tmp_path / "w1", gate_id="w1", zone="west", zones=ZONES, mesh=MeshConfig(
        url=broker.url, key_file=str(key), credentials_file=str(credentials),
        supervisor_key=str(supervisor.public)))
    gate.store.upsert([make_ticket(1), make_ticket(2)])
    try:
        worker = gate.venue_worker
        assert isinstance(worker, VenueWorker)
        assert worker.broker.client_id == "gate-w1-venue"  # type: ignore[attr-defined]
        worker.start()
        assert wait_for(worker.connected.is_set)
        supervisor.issue(broker, Kind.STOP_ENTRY, Scope.ZONE, "west")
        assert wait_for(lambda: gate.venue_book is not None
                        and gate.venue_book.orders().mode is Mode.STOPPED)
        reason = gate.gatekeeper.check(make_ticket(1).barcode, Direction.IN).decision.reason
        assert reason is Reason.ENTRY_STOPPED
    finally:
        gate.close()
