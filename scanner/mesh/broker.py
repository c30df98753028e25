"""The mesh's seam to a message broker: what the link needs of one, and the inbox it drains.

A ``Broker`` connects (and reconnects by itself until closed), publishes at QoS 1,
subscribes with MQTT topic filters, and posts what happens to the link's ``Inbox``:

    Connected   a connection is up and its subscriptions are in place (again)
    Lost        it is gone; the broker keeps trying to reconnect
    Received    a message on a subscribed topic, its payload untouched

The broker's own thread only posts; the link's worker drains the inbox, so the protocol
runs on one thread over a sequence of events. Two brokers honour this contract
(tests/test_mesh_broker.py runs the same tests over both): ``paho_broker.PahoBroker``, MQTT
to the venue's broker, and ``memory_broker.MemoryBroker``, gates in one process whose
network a test partitions, heals and delays at will.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Protocol

# Messages waiting for the worker. Beyond it a network thread waits (and so does the broker,
# which holds the rest): a healing backlog cannot fill memory. It never drops one.
INBOX_MESSAGES = 32
INBOX_WAIT = 2.0  # well inside the keepalive: the network thread must ping too


@dataclass(frozen=True, slots=True)
class Connected:
    """Connected, subscriptions in place: what was missed while away must be asked for."""


@dataclass(frozen=True, slots=True)
class Lost:
    reason: str


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes


Event = Connected | Lost | Received


@dataclass(frozen=True, slots=True)
class Will:
    """What the broker publishes (retained) for a client that vanishes without closing."""

    topic: str
    payload: bytes


class Inbox:
    """Events for one consumer thread, in the order posted. A message takes a room: a
    producer that finds none waits up to ``wait`` and then queues it anyway (a QoS 1
    message acknowledged once the post returns must never be lost). Anything else, the
    consumer's own nudges included, never waits."""

    def __init__(self, rooms: int = INBOX_MESSAGES) -> None:
        self._items: queue.SimpleQueue[tuple[object, bool]] = queue.SimpleQueue()
        self._rooms = threading.Semaphore(rooms)

    def post(self, item: object, *, wait: float = 0.0) -> None:
        roomed = isinstance(item, Received) and self._rooms.acquire(timeout=wait)
        self._items.put((item, roomed))

    def get(self, timeout: float | None = None) -> object:
        """The next item; ``queue.Empty`` after ``timeout`` seconds (0: do not wait)."""
        if timeout is not None and timeout <= 0:
            item, roomed = self._items.get_nowait()
        else:
            item, roomed = self._items.get(timeout=timeout)
        if roomed:
            self._rooms.release()
        return item

    def empty(self) -> bool:
        return self._items.empty()


class Broker(Protocol):
    """One client's connection to the venue's broker; every method returns at once."""

    def subscribe(self, *filters: str) -> None:
        """Receive what matches ``filters`` (``+`` one level, ``#`` the rest), now if
        connected and again on every reconnect (sessions are clean: nothing is kept)."""

    def connect(self, inbox: Inbox, *, will: Will | None = None) -> None:
        """Start connecting, posting events to ``inbox``; a broker that is down is retried
        until ``close``, never raised."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """At least once (QoS 1); ``retain``: the broker keeps it for later subscribers."""

    def close(self, timeout: float = 1.0) -> None:
        """Deliver what was published (waiting at most ``timeout``), disconnect cleanly (no
        will), stop reconnecting and forget the subscriptions. ``subscribe`` and
        ``connect`` may start again afterwards."""
