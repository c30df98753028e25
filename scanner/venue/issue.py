"""Issuing a venue command: what ``gate venue ...`` and the control room's buttons call.

``send`` is that one path: it checks the command (a zone the configuration declares, the
fields as a gate checks them) before it connects, then ``issue``s it.

``issue`` connects to the venue's broker as the supervisor, reads the retained commands
(up to its own probe's echo: then it has them all) to number the new one after the newest
its key issued, signs it, publishes it retained on its slot's topic, and returns once the
broker has routed it back: every connected gate has it then, and every gate that connects
later gets it on subscribing. The numbering, ``max(now in ms, newest + 1)``, keeps
commands of one key in order even when two machines share it or a clock is off.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable

from scanner.clock import utc_now
from scanner.config.zones import ZoneTree
from scanner.config.zones import venue as venue_zones
from scanner.errors import ConfigError, GateError
from scanner.mesh.broker import Broker, Connected, Inbox, Received
from scanner.mesh.broker_settings import MeshSettings
from scanner.tickets import utc_iso
from scanner.venue.channel import COMMANDS, command_topic
from scanner.venue.command import Command, Kind, Scope, new_command, topic_part
from scanner.venue.signing import Dropped, Signer

ISSUE_TIMEOUT = 10.0
PROBE_TOPIC = "venue/probe"


class NotIssued(GateError, TimeoutError):
    """The broker did not take the command in time."""


def send(settings: MeshSettings, zones: ZoneTree, signer: Signer, kind: Kind, scope: Scope,
         target: str = "", *, reason: str = "", zone_key: str = "zone") -> Command:
    """Check, sign and publish one command on a connection of its own to the broker of
    ``settings`` (its credentials the broker's supervisor user); the command as sent.
    ConfigError for a zone not in ``zones`` (``zone_key`` names the setting), Refused for
    a command no gate would take: both before anything is sent."""
    from scanner.mesh.paho_broker import PahoBroker

    if scope is Scope.ZONE and zones != venue_zones() and target not in zones:
        # A zone no gate is in would reach nobody, and say "sent" all the same.
        raise ConfigError(f"{zone_key}: {target!r} is not one of the [[zones]] "
                          f"({', '.join(zones.zones)})")
    new_command(kind, scope, target, issuer=signer.issuer, seq=1,
                issued_at=utc_iso(utc_now()), reason=reason)
    broker = PahoBroker(settings, f"supervisor-{signer.issuer}-{uuid.uuid4().hex[:8]}")
    return issue(broker, signer, kind, scope, target, reason=reason,
                 where=f"the broker at {settings.url.split('@')[-1]}")


def issue(broker: Broker, signer: Signer, kind: Kind, scope: Scope, target: str = "", *,
          reason: str = "", timeout: float = ISSUE_TIMEOUT,
          wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
          where: str = "the broker") -> Command:
    """Sign and publish one command through ``broker`` (a ``Broker`` not yet connected);
    the command as sent. NotIssued when the broker did not route it within ``timeout``."""
    inbox = Inbox()
    probe = uuid.uuid4().hex
    probe_topic = f"{PROBE_TOPIC}/{probe}"
    verifier = signer.verifier()
    deadline = time.monotonic() + timeout
    broker.subscribe(f"{COMMANDS}/#", probe_topic)
    broker.connect(inbox)
    try:
        newest = 0
        for topic, payload in _Events(inbox, deadline, where, "answer"):
            if topic == probe_topic:
                break
            if topic.startswith(f"{COMMANDS}/"):
                try:
                    newest = max(newest, verifier.open(payload).seq)
                except Dropped:
                    continue  # another key's, or garbage: not ours to number after
            elif topic == "":  # connected: ask for the echo that ends the retained ones
                broker.publish(probe_topic, probe.encode())
        command = new_command(kind, scope, target, issuer=signer.issuer,
                              seq=max(wall_ms(), newest + 1), issued_at=utc_iso(utc_now()),
                              reason=reason)
        sealed = signer.seal(command)
        broker.publish(command_topic(topic_part(scope, target)), sealed, retain=True)
        for _topic, payload in _Events(inbox, deadline, where, "route the command back"):
            if payload == sealed:
                return command
        raise AssertionError("unreachable")  # _until raises at the deadline
    finally:
        broker.close(timeout=1.0)


class _Events:
    """Messages (topic, payload) as they come, ("", b"") for each connection, until the
    deadline, which raises NotIssued."""

    def __init__(self, inbox: Inbox, deadline: float, where: str, doing: str) -> None:
        self.inbox, self.deadline, self.where, self.doing = inbox, deadline, where, doing

    def __iter__(self) -> _Events:
        return self

    def __next__(self) -> tuple[str, bytes]:
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise NotIssued(f"venue: {self.where} did not {self.doing} in time; the "
                                f"command may not have been sent (run it again: a repeat "
                                f"is harmless)")
            try:
                event = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(event, Received):
                return event.topic, event.payload
            if isinstance(event, Connected):
                return "", b""
