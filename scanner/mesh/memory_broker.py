"""A ``Broker`` in one process: gates' links attached to a ``MemoryHub`` that a test drives.

The hub routes each publish at once, in order, to every connected member whose filters match
(``+`` and ``#`` as MQTT has them), keeps retained messages and wills, and has switches a
real network would need root or timing for, each deterministic:

    stop() / start()         the broker goes away (retained messages with it) and comes back
    partition(c) / heal(c)   one client cut off (its will goes out) and let back in
    drop(filter, n)          the next n messages matching are lost on the way
    hold(filter) / release() messages matching wait until released, then go in order

A member posts to its link's inbox without waiting (the hub is the broker that holds the
rest) and reconnects by itself when the hub lets it, as paho does. What a member publishes
while disconnected is lost, as it would be on a cut network; ``published`` records every
message that reached the hub.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from scanner.mesh.broker import Connected, Inbox, Lost, Received, Will


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT's rule: ``+`` is one whole level, a final ``#`` the parent and all below it."""
    want, have = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)


@dataclass(slots=True)
class _Rule:
    topic_filter: str
    count: int  # messages left to drop


class MemoryHub:
    """The broker the members share; every switch is safe from any thread."""

    def __init__(self) -> None:
        self.up = True
        self.published: list[tuple[str, bytes]] = []  # every message that reached the hub
        self._members: dict[str, MemoryBroker] = {}
        self._retained: dict[str, bytes] = {}
        self._cut: set[str] = set()
        self._drops: list[_Rule] = []
        self._holds: list[str] = []
        self._held: list[tuple[str, bytes, bool]] = []
        self._lock = threading.RLock()

    def broker(self, client_id: str) -> MemoryBroker:
        """The member for ``client_id`` (one per client: a second would take its place)."""
        return MemoryBroker(self, client_id)

    def connected(self, client_id: str) -> bool:
        member = self._members.get(client_id)
        return member is not None and member.connected

    # -- the switches ---------------------------------------------------------------------

    def stop(self) -> None:
        """The broker is gone: every member lost, retained messages with it (a broker
        without persistence), nothing routed until ``start``."""
        with self._lock:
            self.up = False
            self._retained.clear()
            for member in self._members.values():
                self._lose(member, "broker stopped", will=False)

    def start(self) -> None:
        with self._lock:
            self.up = True
            for member in list(self._members.values()):
                self._try_connect(member)

    def partition(self, client_id: str) -> None:
        """Cut one client off: it is lost, and the others hear its will."""
        with self._lock:
            self._cut.add(client_id)
            member = self._members.get(client_id)
            if member is not None:
                self._lose(member, "partitioned", will=True)

    def heal(self, client_id: str) -> None:
        with self._lock:
            self._cut.discard(client_id)
            member = self._members.get(client_id)
            if member is not None:
                self._try_connect(member)

    def drop(self, topic_filter: str, count: int = 1) -> None:
        """The next ``count`` messages matching ``topic_filter`` never arrive."""
        with self._lock:
            self._drops.append(_Rule(topic_filter, count))

    def hold(self, topic_filter: str) -> None:
        """Messages matching ``topic_filter`` wait in the hub until ``release``."""
        with self._lock:
            self._holds.append(topic_filter)

    def release(self) -> None:
        """Stop holding, and deliver what was held, in the order it was published."""
        with self._lock:
            held, self._held, self._holds = self._held, [], []
            for topic, payload, retain in held:
                self._route(topic, payload, retain)

    # -- what members call ----------------------------------------------------------------

    def _attach(self, member: MemoryBroker) -> None:
        with self._lock:
            old = self._members.get(member.client_id)
            if old is not None and old is not member:
                self._lose(old, "taken over", will=False)  # as MQTT does with a client id
            self._members[member.client_id] = member
            self._try_connect(member)

    def _detach(self, member: MemoryBroker) -> None:
        with self._lock:
            member.connected = False
            if self._members.get(member.client_id) is member:
                del self._members[member.client_id]

    def _publish(self, member: MemoryBroker, topic: str, payload: bytes, retain: bool) -> None:
        with self._lock:
            if not member.connected:
                return
            self.published.append((topic, payload))
            for rule in self._drops:
                if rule.count and topic_matches(rule.topic_filter, topic):
                    rule.count -= 1
                    return
            if any(topic_matches(f, topic) for f in self._holds):
                self._held.append((topic, payload, retain))
                return
            self._route(topic, payload, retain)

    def _subscribed(self, member: MemoryBroker, filters: tuple[str, ...]) -> None:
        with self._lock:
            if member.connected:
                self._send_retained(member, filters)

    # -- inside the lock ------------------------------------------------------------------

    def _route(self, topic: str, payload: bytes, retain: bool) -> None:
        if retain:
            if payload:
                self._retained[topic] = payload
            else:  # an empty retained message clears the topic's
                self._retained.pop(topic, None)
        for member in self._members.values():
            if member.connected and any(topic_matches(f, topic) for f in member.filters):
                member.post(Received(topic, payload))

    def _try_connect(self, member: MemoryBroker) -> None:
        if not self.up or member.connected or member.client_id in self._cut \
                or self._members.get(member.client_id) is not member:
            return
        member.connected = True
        member.post(Connected())
        self._send_retained(member, tuple(member.filters))

    def _send_retained(self, member: MemoryBroker, filters: tuple[str, ...]) -> None:
        for topic, payload in self._retained.items():
            if any(topic_matches(f, topic) for f in filters):
                member.post(Received(topic, payload))

    def _lose(self, member: MemoryBroker, reason: str, *, will: bool) -> None:
        if not member.connected:
            return
        member.connected = False
        member.post(Lost(reason))
        if will and member.will is not None and self.up:
            self._route(member.will.topic, member.will.payload, retain=True)


class MemoryBroker:
    """One client of a ``MemoryHub``: the ``Broker`` a test hands a gate's link."""

    def __init__(self, hub: MemoryHub, client_id: str) -> None:
        self.hub = hub
        self.client_id = client_id
        self.filters: list[str] = []
        self.will: Will | None = None
        self.connected = False
        self._inbox: Inbox | None = None

    def __repr__(self) -> str:
        return f"MemoryBroker({self.client_id!r})"

    def post(self, event: Connected | Lost | Received) -> None:
        if self._inbox is not None:
            self._inbox.post(event)

    def subscribe(self, *filters: str) -> None:
        self.filters += filters
        self.hub._subscribed(self, filters)

    def connect(self, inbox: Inbox, *, will: Will | None = None) -> None:
        self._inbox, self.will = inbox, will
        self.hub._attach(self)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.hub._publish(self, topic, payload, retain)

    def close(self, timeout: float = 1.0) -> None:
        """Every publish was routed when it returned: nothing to wait for."""
        self.hub._detach(self)
        self.filters = []
