"""The Broker contract, the same tests over both brokers: the in-memory hub, and paho on a
real mosquitto (each client through a relay of its own, so one can be cut off alone)."""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from kits.mesh import KEY, Broker, CutProxy

from scanner.mesh.broker import Broker as BrokerSeam
from scanner.mesh.broker import Connected, Event, Inbox, Lost, Received, Will
from scanner.mesh.broker_settings import MeshSettings
from scanner.mesh.memory_broker import MemoryHub, topic_matches
from scanner.mesh.paho_broker import PahoBroker

WAIT = 15.0  # paho notices a killed broker at once, a cut relay at once; a reconnect in 0.2 s


class Net(Protocol):
    def client(self, name: str) -> BrokerSeam: ...
    def stop(self) -> None: ...
    def start(self) -> None: ...
    def cut(self, name: str) -> None: ...
    def mend(self, name: str) -> None: ...
    def close(self) -> None: ...


class MemoryNet:
    def __init__(self) -> None:
        self.hub = MemoryHub()

    def client(self, name: str) -> BrokerSeam:
        return self.hub.broker(name)

    def stop(self) -> None:
        self.hub.stop()

    def start(self) -> None:
        self.hub.start()

    def cut(self, name: str) -> None:
        self.hub.partition(name)

    def mend(self, name: str) -> None:
        self.hub.heal(name)

    def close(self) -> None:
        pass


class MosquittoNet:
    def __init__(self, folder: Path) -> None:
        self.broker = Broker(folder, []).start()  # anonymous, no ACL: any topic
        self.proxies: dict[str, CutProxy] = {}
        self.clients: list[PahoBroker] = []

    def client(self, name: str) -> BrokerSeam:
        proxy = self.proxies[name] = CutProxy(self.broker.port)
        settings = MeshSettings(url=proxy.url, key=KEY, reconnect_min=0.2, reconnect_max=0.2)
        client = PahoBroker(settings, name)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        self.broker.stop()

    def start(self) -> None:
        self.broker.start()

    def cut(self, name: str) -> None:
        self.proxies[name].cut()

    def mend(self, name: str) -> None:
        self.proxies[name].mend()

    def close(self) -> None:
        for client in self.clients:
            client.close(timeout=0)
        for proxy in self.proxies.values():
            proxy.close()
        self.broker.stop()


@pytest.fixture(params=["memory", "mosquitto"])
def net(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Net]:
    made: Net = MemoryNet() if request.param == "memory" else MosquittoNet(tmp_path)
    yield made
    made.close()


def next_event(inbox: Inbox, kind: type[Event]) -> Event:
    """The next event of ``kind``, skipping others (a retained message, a late Lost)."""
    while True:
        try:
            event = inbox.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no {kind.__name__} within {WAIT} s") from None
        if isinstance(event, kind):
            return event


def received_until(inbox: Inbox, last: bytes) -> list[tuple[str, bytes]]:
    """Messages received up to and including the one whose payload is ``last``."""
    got: list[tuple[str, bytes]] = []
    while not got or got[-1][1] != last:
        event = next_event(inbox, Received)
        assert isinstance(event, Received)
        got.append((event.topic, event.payload))
    return got


def joined(net: Net, name: str, *filters: str, will: Will | None = None
           ) -> tuple[BrokerSeam, Inbox]:
    client, inbox = net.client(name), Inbox()
    client.subscribe(*filters)
    client.connect(inbox, will=will)
    next_event(inbox, Connected)
    return client, inbox


def test_a_client_hears_connected_once_its_broker_is_up(net: Net) -> None:
    client, inbox = net.client("a"), Inbox()
    client.connect(inbox)
    assert isinstance(next_event(inbox, Connected), Connected)


def test_wildcard_subscriptions_receive_what_matches_in_order_and_nothing_else(net: Net) -> None:
    _, inbox = joined(net, "a", "gates/+/status", "gates/+/replay/a")
    b, _ = joined(net, "b")
    sent = [("gates/b/scans", b"1"), ("gates/b/status", b"2"), ("gates/b/replay/c", b"3"),
            ("gates/b/replay/a", b"4"), ("gates/b/replay/a/x", b"5"), ("gates/b/status", b"6")]
    for topic, payload in sent:
        b.publish(topic, payload)
    assert received_until(inbox, b"6") == [sent[1], sent[3], sent[5]]


def test_a_hash_filter_receives_a_whole_subtree(net: Net) -> None:
    _, inbox = joined(net, "a", "gates/#")
    b, _ = joined(net, "b")
    for topic in ("gates/b/scans", "other/b", "gates/b/replayed/a"):
        b.publish(topic, topic.encode())
    assert [t for t, _ in received_until(inbox, b"gates/b/replayed/a")] == [
        "gates/b/scans", "gates/b/replayed/a"]


def test_a_retained_message_reaches_a_later_subscriber(net: Net) -> None:
    b, _ = joined(net, "b")
    b.publish("gates/b/status", b"seq 7", retain=True)
    b.close(timeout=WAIT)  # delivered to the broker, which keeps it
    _, inbox = joined(net, "a", "gates/+/status")
    assert received_until(inbox, b"seq 7") == [("gates/b/status", b"seq 7")]


def test_a_client_cut_off_is_lost_and_the_others_hear_its_will(net: Net) -> None:
    _, b_inbox = joined(net, "b", "gates/+/status")
    _, a_inbox = joined(net, "a", will=Will("gates/a/status", b"offline"))
    net.cut("a")
    assert isinstance(next_event(a_inbox, Lost), Lost)
    assert received_until(b_inbox, b"offline") == [("gates/a/status", b"offline")]


@pytest.mark.parametrize("outage", ["one client cut off", "the broker stopped"])
def test_a_client_lost_reconnects_with_its_subscriptions_once_it_can(net: Net,
                                                                     outage: str) -> None:
    _, a_inbox = joined(net, "a", "gates/+/scans")
    b, b_inbox = joined(net, "b")
    whole = outage == "the broker stopped"
    net.stop() if whole else net.cut("a")
    next_event(a_inbox, Lost)
    if whole:
        next_event(b_inbox, Lost)
    net.start() if whole else net.mend("a")
    next_event(a_inbox, Connected)
    if whole:
        next_event(b_inbox, Connected)
    b.publish("gates/b/scans", b"back")
    assert received_until(a_inbox, b"back") == [("gates/b/scans", b"back")]


def test_a_closed_client_has_delivered_what_it_published(net: Net) -> None:
    _, a_inbox = joined(net, "a", "gates/+/status")
    b, _ = joined(net, "b")
    b.publish("gates/b/status", b"bye", retain=True)
    b.close(timeout=WAIT)
    assert received_until(a_inbox, b"bye") == [("gates/b/status", b"bye")]


@pytest.mark.parametrize(("topic_filter", "topic", "matches"), [
    ("gates/+/scans", "gates/a/scans", True),
    ("gates/+/scans", "gates/a/b/scans", False),
    ("gates/+/replay/a", "gates/b/replay/a", True),
    ("gates/+/replay/a", "gates/b/replay/ab", False),
    ("gates/#", "gates", True),
    ("gates/#", "gates/a/status", True),
    ("gates/+", "gates", False),
    ("+/+", "gates/a", True),
])
def test_the_hub_matches_topics_as_mqtt_does(topic_filter: str, topic: str,
                                             matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


def test_pahos_network_thread_is_mesh_net_to_the_kernel(tmp_path: Path) -> None:
    """top -H tells the broker's network loop (``mesh-net``) from the link (``mesh``)."""
    net = MosquittoNet(tmp_path)
    try:
        before = set(os.listdir("/proc/self/task"))
        joined(net, "a", "x/#")
        comms = {Path(f"/proc/self/task/{tid}/comm").read_text().strip()
                 for tid in set(os.listdir("/proc/self/task")) - before}
        assert "mesh-net" in comms
    finally:
        net.close()
