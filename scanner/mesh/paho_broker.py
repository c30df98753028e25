"""The ``Broker`` over MQTT 5 with paho-mqtt 2.x: the only module that imports paho.

paho's network thread decodes nothing: it posts ``Connected``, ``Lost`` and ``Received`` to
the link's inbox (waiting for room there, so a healing backlog stays in the broker, not in
the gate's memory) and reconnects by itself with backoff (``reconnect_min``..``max``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from scanner.mesh.broker import INBOX_WAIT, Connected, Inbox, Lost, Received, Will
from scanner.mesh.broker_settings import MeshError, MeshSettings, check_url
from scanner.mesh.message import MAX_PACKET
from scanner.run.worker import name_thread

log = logging.getLogger("scanner.mesh")
MAX_INFLIGHT = 200  # QoS 1 messages unacknowledged at once: a replay streams, not trickles


def _on_socket_open(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """On paho's network thread, as each connection opens. Small messages go out at once:
    Nagle would hold a live scan behind an unacknowledged one (up to the peer's
    delayed-ack timeout, 40 ms on Linux). The thread is ``mesh-net`` to the kernel, apart
    from the link's ``mesh`` it started as."""
    name_thread("mesh-net")
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PahoBroker:
    """A ``Broker`` for ``settings`` (URL, credentials, TLS, keepalive, reconnect delays);
    each ``connect`` starts a fresh client, so a restarted link starts clean."""

    def __init__(self, settings: MeshSettings, client_id: str) -> None:
        check_url(settings.url)
        self.settings = settings
        self.client_id = client_id
        self._filters: list[str] = []
        self._client: mqtt.Client | None = None
        self._inbox = Inbox()
        self._last: mqtt.MQTTMessageInfo | None = None
        self._subscribing: int | None = None  # the message id of a connection's SUBSCRIBE

    def __repr__(self) -> str:
        return f"PahoBroker({self.settings.url!r}, {self.client_id!r})"

    def subscribe(self, *filters: str) -> None:
        self._filters += filters
        client = self._client
        if client is not None and client.is_connected():
            client.subscribe([(f, 1) for f in filters])

    def connect(self, inbox: Inbox, *, will: Will | None = None) -> None:
        self._inbox = inbox
        self._client = client = self._make_client(will)
        client.loop_start()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        client = self._client
        if client is not None:  # while disconnected paho queues it and sends it on reconnect
            self._last = client.publish(topic, payload, qos=1, retain=retain)

    def close(self, timeout: float = 1.0) -> None:
        client, self._client = self._client, None
        self._filters = []
        if client is None:
            return
        last, self._last = self._last, None
        if last is not None and client.is_connected():
            with contextlib.suppress(RuntimeError, ValueError):
                last.wait_for_publish(timeout=timeout)
        client.disconnect()
        client.loop_stop()

    def _make_client(self, will: Will | None) -> mqtt.Client:
        s = self.settings
        parts = check_url(s.url)
        # MQTT 5 for its Maximum Packet Size: the broker drops a message this gate would
        # refuse instead of sending it, so an oversized one never fills the gate's memory
        # (paho reads every packet whole, whatever its size).
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5)
        if s.username is not None:
            client.username_pw_set(s.username, s.password.reveal() if s.password else None)
        if parts.scheme == "mqtts":
            try:
                client.tls_set(ca_certs=s.ca_file, certfile=s.cert_file, keyfile=s.cert_key_file,
                               cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError) as exc:
                raise MeshError(f"mesh: cannot load the TLS files: {exc}") from exc
        client.max_inflight_messages_set(MAX_INFLIGHT)
        # paho sleeps fractions of a second as well (its hint says int).
        client.reconnect_delay_set(s.reconnect_min, s.reconnect_max)  # type: ignore[arg-type]
        if will is not None:
            client.will_set(will.topic, will.payload, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_socket_open = _on_socket_open
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        # connect_async: a broker that is down at start is retried by the loop, not raised.
        # clean_start, and no session expiry: nothing is kept for us while we are away.
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.MaximumPacketSize = MAX_PACKET
        client.connect_async(parts.hostname or "", port, keepalive=s.keepalive,
                             clean_start=True, properties=properties)
        return client

    # -- paho's thread: post, nothing else ------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("mesh: broker refused the connection: %s", reason)
            return
        if not self._filters:
            self._inbox.post(Connected())
            return
        # Connected once the broker has acknowledged the subscriptions: whatever is
        # published after the link hears of it reaches it.
        self._subscribing = client.subscribe([(f, 1) for f in self._filters])[1]

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, mid: int,
                      reasons: list[Any], _props: Any) -> None:
        if mid != self._subscribing:
            return
        self._subscribing = None
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:  # the ACL: the gate runs, deaf to what it may not read
            log.warning("mesh: broker refused %d subscription(s): %s", len(refused),
                        ", ".join(refused))
        self._inbox.post(Connected())

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason: Any, _props: Any) -> None:
        self._inbox.post(Lost(str(reason)))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Past the wait it is queued anyway: a QoS 1 message paho acknowledges after this
        # returns must never be lost.
        self._inbox.post(Received(msg.topic, bytes(msg.payload)), wait=INBOX_WAIT)
