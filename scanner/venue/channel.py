"""The ``venue`` worker: a gate's own connection to the broker for supervisors' commands.

Topics (``venue/...`` written by the supervisor's broker user alone; ``gates/<g>/...`` by
gate g alone, as the ACL in ``deploy/mosquitto/`` says):

    venue/commands/<slot>         a command, retained: the newest of each slot stays on the
                                  broker, so a gate that was away gets it on subscribing
    gates/<g>/venue/probe         g's own echo: once it comes back, every retained command
                                  sent on subscribing has been handled (the broker keeps
                                  the order of one connection's messages)
    gates/<g>/venue/digest        retained: how many slots g holds, its top seq, a hash
    gates/<g>/venue/ask/<peer>    g asks peer for the commands it holds
    gates/<g>/venue/given/<asker> the signed commands g holds, for asker

Anti-entropy: a broker restarted without its retained messages, or one a gate reached
only after the command's retained copy was replaced, must not leave a gate behind. Each
gate announces its digest; a gate whose digest differs from a peer's asks it, and the peer
answers with the signed envelopes it holds: gates cannot sign, so they only pass on what a
supervisor signed, and every envelope is checked again on arrival. Digests and asks carry
no secret and order nothing: forged ones cost at most an answer per ``ANSWER_GAP``.

After a (re)connect the book stays unsettled (decisions wait, ``CommandBook.orders``) until
the probe is back and every peer that announced a newer command has answered, or
``catch_up_wait`` has passed. Its own connection (client id ``gate-<id>-venue``) keeps the
scan link (``scanner.mesh.link``) untouched, and a command never queues behind a replay of
thousands of scans.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from scanner.errors import GateError
from scanner.mesh.broker import Broker, Connected, Inbox, Lost, Received
from scanner.mesh.message import PREFIX
from scanner.run.worker import SessionWorker, Stage
from scanner.venue.in_force import CommandBook

log = logging.getLogger("scanner.venue")

COMMANDS = "venue/commands"
TICK = 0.25
ASK_AGAIN = 10.0          # an ask not answered within this is asked again
# Outside a catch-up, a difference must last this long before it is asked about: a live
# command reaches the gates one after another, and for that moment their digests differ.
ASK_DELAY = 1.0
GIVEN_BYTES = 256 * 1024  # envelopes per answer message, well under the broker's limit
# An asker is answered at most this often (the asks meanwhile get one answer after it): an
# ask is a few bytes and its answer every command held, so one per ask let a peer asking
# in a loop have the gate and the broker send them all thousands of times a second.
ANSWER_GAP = 1.0
MAX_DIGEST_BYTES = 1024


def command_topic(part: str) -> str:
    return f"{COMMANDS}/{part}"


def venue_topic(gate: str, kind: str, other: str | None = None) -> str:
    return f"{PREFIX}/{gate}/venue/{kind}" + (f"/{other}" if other else "")


class WatchedInbox(Inbox):
    """The worker's inbox: what may change the orders (a connection, a command, a peer's
    answer) unsettles the book at once, on the broker's thread, and ``pending`` counts it
    until the worker has handled it. Digests, asks and probes do not: the catch-up after
    a connection waits for those by itself."""

    def __init__(self, book: CommandBook) -> None:
        super().__init__()
        self.book = book
        self.pending = 0
        self.lock = threading.Lock()

    def post(self, item: object, *, wait: float = 0.0) -> None:
        if _may_change_orders(item):
            with self.lock:
                self.pending += 1
                self.book.unsettle()
        super().post(item, wait=wait)

    def handled(self, item: object) -> None:
        if _may_change_orders(item):
            with self.lock:
                self.pending -= 1


def _may_change_orders(item: object) -> bool:
    if isinstance(item, Connected):
        return True
    return isinstance(item, Received) and (item.topic.startswith(f"{COMMANDS}/")
                                           or "/venue/given/" in item.topic)


class VenueWorker(SessionWorker):
    def __init__(self, book: CommandBook, broker: Broker, gate_id: str, *,
                 heartbeat_timeout: float = 10.0, catch_up_wait: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__("venue", heartbeat_timeout=heartbeat_timeout,
                         stage=Stage.BACKGROUND, clock=monotonic)
        self.book = book
        self.broker = broker
        self.gate_id = gate_id
        self.catch_up_wait = book.settle_wait if catch_up_wait is None else catch_up_wait
        self.inbox = WatchedInbox(book)
        self.connected = threading.Event()
        self._probe: str | None = None
        self._catch_up_until = 0.0
        self._awaited: set[str] = set()                 # peers whose answers we wait for
        self._peers: dict[str, dict[str, Any]] = {}     # peer -> its digest
        self._changed_at: dict[str, float] = {}         # peer (or us) -> digest changed
        self._asked: dict[str, tuple[str, float]] = {}  # peer -> (its digest hash, when)
        self._asking: set[str] = set()                  # peers whose asks wait for an answer
        self._answered: dict[str, float] = {}           # peer -> when it was last answered
        self._announced: dict[str, Any] | None = None

    def state(self) -> dict[str, Any]:
        return self.book.state() | {"connected": self.connected.is_set()}

    def interrupt(self) -> None:
        self.inbox.post(None)

    # -- the thread (one connection per run: SessionWorker) --------------------------------

    def open(self) -> None:
        self.broker.subscribe(f"{COMMANDS}/#", f"{PREFIX}/+/venue/digest",
                              venue_topic(self.gate_id, "probe"),
                              f"{PREFIX}/+/venue/ask/{self.gate_id}",
                              f"{PREFIX}/+/venue/given/{self.gate_id}")
        self.broker.connect(self.inbox)

    def shut(self) -> None:
        self.broker.close(timeout=1.0)
        self._on_lost()

    def step(self, wait: float = TICK) -> None:
        """The events in the inbox (waiting up to ``wait`` for the first), then asks and
        the digest that are due, then settle the book if nothing is left to wait for."""
        try:
            event = self.inbox.get(timeout=wait)
            while True:
                try:
                    self._handle(event)
                finally:
                    self.inbox.handled(event)
                event = self.inbox.get(timeout=0)
        except queue.Empty:
            pass
        except GateError as exc:  # the journal database refused: say so, stay alive
            log.error("venue: %s", exc)
        if self.connected.is_set() and self._probe is None:
            self._ask_peers()
            self._announce()
        self._answer_askers()
        self._maybe_settle()

    def _handle(self, event: object) -> None:
        if isinstance(event, Received):
            self._received(event.topic, event.payload)
        elif isinstance(event, Connected):
            self._on_connected()
        elif isinstance(event, Lost):
            self._on_lost()

    def _on_connected(self) -> None:
        self.connected.set()
        self._probe = uuid.uuid4().hex
        self._catch_up_until = self.clock() + self.catch_up_wait
        self._asked.clear()
        self._announced = None
        self.broker.publish(venue_topic(self.gate_id, "probe"), self._probe.encode())

    def _on_lost(self) -> None:
        self.connected.clear()
        self._probe = None
        self._awaited.clear()

    def _maybe_settle(self) -> None:
        waiting = self.connected.is_set() and (self._probe is not None or self._awaited) \
            and self.clock() < self._catch_up_until
        with self.inbox.lock:
            if not waiting and self.inbox.pending == 0:
                self.book.settle()

    # -- messages ------------------------------------------------------------------------

    def _received(self, topic: str, payload: bytes) -> None:
        if topic.startswith(f"{COMMANDS}/"):
            self.book.offer(payload)
            return
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != PREFIX or parts[2] != "venue":
            return
        sender, kind = parts[1], parts[3]
        if kind == "probe" and sender == self.gate_id:
            if payload.decode(errors="replace") == self._probe:
                self._probe = None  # every retained command is in
                self._await_newer()
        elif kind == "digest" and sender != self.gate_id:
            digest = _digest(payload)
            if digest is not None and digest != self._peers.get(sender):
                self._peers[sender] = digest
                self._changed_at[sender] = self.clock()
        elif kind == "ask" and sender != self.gate_id:
            self._asking.add(sender)
        elif kind == "given" and sender != self.gate_id:
            self._take(sender, payload)

    def _await_newer(self) -> None:
        """After the retained commands: peers announcing a command newer than any held
        here are asked, and the first decision waits for their answers."""
        top = self.book.digest()["top"]
        self._awaited = {peer for peer, digest in self._peers.items() if digest["top"] > top}

    def _ask_peers(self) -> None:
        own = self.book.digest()
        now = self.clock()
        if own != self._announced:
            self._changed_at[self.gate_id] = now
        for peer, digest in self._peers.items():
            if digest["hash"] == own["hash"]:
                self._awaited.discard(peer)
                continue
            if peer not in self._awaited and now - max(
                    self._changed_at.get(peer, 0.0),
                    self._changed_at.get(self.gate_id, 0.0)) < ASK_DELAY:
                continue
            asked = self._asked.get(peer)
            if asked is not None and asked[0] == digest["hash"] and now - asked[1] < ASK_AGAIN:
                continue
            self._asked[peer] = (digest["hash"], now)
            self.broker.publish(venue_topic(self.gate_id, "ask", peer), orjson.dumps(own))

    def _answer_askers(self) -> None:
        now = self.clock()
        for asker in [a for a in self._asking
                      if now - self._answered.get(a, -ANSWER_GAP) >= ANSWER_GAP]:
            self._asking.discard(asker)
            self._answered[asker] = now
            self._answer(asker)

    def _answer(self, asker: str) -> None:
        chunk: list[str] = []
        size = 0
        for envelope in self.book.envelopes():
            if chunk and size + len(envelope) > GIVEN_BYTES:
                self._give(asker, chunk)
                chunk, size = [], 0
            chunk.append(envelope.decode())
            size += len(envelope)
        self._give(asker, chunk)

    def _give(self, asker: str, envelopes: list[str]) -> None:
        self.broker.publish(venue_topic(self.gate_id, "given", asker),
                            orjson.dumps({"envelopes": envelopes}))

    def _take(self, sender: str, payload: bytes) -> None:
        try:
            envelopes = orjson.loads(payload)["envelopes"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            envelopes = None
        if not isinstance(envelopes, list):
            self.book.dropped["malformed"] += 1
            return
        for envelope in envelopes:
            if isinstance(envelope, str):
                self.book.offer(envelope.encode(), via=f"gate {sender}")
            else:
                self.book.dropped["malformed"] += 1
        self._awaited.discard(sender)

    def _announce(self) -> None:
        digest = self.book.digest()
        if digest != self._announced:
            self.broker.publish(venue_topic(self.gate_id, "digest"), orjson.dumps(digest),
                                retain=True)
            self._announced = digest


def _digest(payload: bytes) -> dict[str, Any] | None:
    if len(payload) > MAX_DIGEST_BYTES:
        return None
    try:
        digest = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(digest, dict) or set(digest) != {"slots", "top", "hash"} \
            or type(digest["top"]) is not int or not isinstance(digest["hash"], str):
        return None
    return digest
