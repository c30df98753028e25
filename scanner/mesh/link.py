"""The mesh link: the protocol that shares this gate's scans over a ``Broker``.

What it does, all on its own thread, over the events the broker posts to its inbox
(``scanner.mesh.broker``: connected, lost, received) and its own nudges:

- stamps new journal rows with the HLC (``MeshStore.stamp_journal``) and publishes them at
  QoS 1 under ``gates/<gate>/scans`` (many records per message in a replay); ``notify()``
  after the gate acted makes that happen now instead of at the next tick;
- keeps a retained ``gates/<gate>/status`` (latest sequence number, online) and a last will
  saying offline, so a peer learns both our high-water mark and that we are gone;
- on reconnect, publishes what it stamped while alone on its live topic before announcing
  the new number, so the peers connected already need not ask for it;
- stores peers' records, merging their stamps into the clock, in batches at most
  ``STORE_DELAY`` old (decisions and the zone book see them at once: ``MeshStore.stage``);
- anti-entropy: on (re)connect, and every ``anti_entropy_interval``, compares each peer's
  announced sequence number with what is held and asks the origin for the missing ranges
  (``gates/<gate>/replay/<origin>``); the origin republishes them from its own records.
  The broker is never trusted to hold anything: a clean session, and only the retained
  status, which is an optimisation (a peer's next record or status says the same).

A broker that is gone is reconnected by the ``Broker`` itself (paho with backoff);
meanwhile the gate decides alone and says so: one log line when partitioned, one when
healed, ``state()`` (and systemd's STATUS line), and the state persisted in the journal
database every ``STATE_INTERVAL`` for ``gate status`` in another process. The link is a
``scanner.run.worker.Worker``: the daemon's supervisor starts, restarts and stops it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import operator
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scanner.errors import GateError
from scanner.mesh.broker import Broker, Connected, Inbox, Lost, Received, Will
from scanner.mesh.broker_settings import MeshSettings
from scanner.mesh.hlc import HybridClock, Stamp
from scanner.mesh.message import (
    LEDGER,
    MAX_PAYLOAD,
    MAX_RANGES,
    PREFIX,
    REPLAY,
    REPLAYED,
    SCANS,
    STATUS,
    Batch,
    Codec,
    Health,
    Message,
    Record,
    ReplayRequest,
    Status,
    replay_topic,
    scans_topic,
    status_topic,
)
from scanner.mesh.partition import Partition
from scanner.mesh.peer_journal import MeshStore, missing_ranges, utc_iso_now
from scanner.mesh.replay import Replays, chunks
from scanner.mesh.zoning import GATE_FILTERS, ZoneMesh
from scanner.run.worker import SessionWorker, Stage
from scanner.zones.escrow import Ledger

log = logging.getLogger("scanner.mesh")
_SEQ, _HLC = operator.itemgetter(2), operator.itemgetter(3)  # Record.seq, Record.hlc

STATE_INTERVAL = 5.0          # how often the state is persisted for gate status elsewhere
TICK = 0.25                   # the loop's longest sleep: heartbeats at least this often
# A journal row nobody notified about is stamped within this (notify() stamps at once): a
# quiet tick's probe of the journal is cheap, not free, and 50 gates tick 4 times a second.
QUIET_STAMP = 1.0
# A busy gate re-announces its sequence number at most this often. Its live records carry
# their numbers already, so the status only matters when one was lost (and nothing follows
# it) or for a peer connecting later: a status per scan was a third of a venue's messages,
# and every 10 s still a quarter of those a gate hears (60 gates at 1,200/h). A lost last
# record is found within this; a (re)connection announces at once.
STATUS_INTERVAL = 30.0
# A peer back online is told our number (if the retained status lacks it) at most this
# long after our last status: gates starting in a batch cost one status each, not one per
# newcomer (every status goes to every gate).
PEER_BACK_GAP = 1.0
# A replay asked for and not begun within this is asked again; one that is arriving is not:
# asking again for what is in flight has the origin send it all twice (a storm that feeds
# itself under load).
REQUEST_TIMEOUT = 10.0
# Peer records per transaction: enough to amortise the commit, short enough that a
# decision's journal write (same database) never waits long for the lock.
_BATCH = 2000
# Peer records wait up to this long to be written together: each transaction rewrites the
# same table and index pages into the WAL, so in a large venue (each gate writes every
# other gate's scans) a transaction every tenth of a second was a third of a gate's CPU.
# Decisions, the zone book and ``on_records`` see them at once (``_defer``).
STORE_DELAY = 0.5


@dataclass(slots=True)
class Peer:
    announced: int = 0        # the highest sequence number it said it has
    online: bool = False
    asked_at: float = 0.0     # when we last asked for missing ranges; 0: look now
    heard_at: float = 0.0     # when we last stored records of it
    verified: int = 0         # every sequence number up to this one is held here
    asked_since_connect: bool = False  # a first ask on this connection went out


@dataclass(frozen=True, slots=True)
class _Wake:
    """Look at the stopping flag now."""


@dataclass(frozen=True, slots=True)
class _Journaled:
    """A decision was journaled: stamp and publish it now."""


_WAKE, _JOURNALED = _Wake(), _Journaled()


class Link(SessionWorker):
    """The worker. ``store`` is this gate's MeshStore; ``broker`` its way to the others
    (``paho_broker.PahoBroker`` in a gate); ``on_records`` (optional) is told of peer records
    as they are heard, before they are written (benchmarks); ``zones``
    (optional) is the gate's zone part (``scanner.mesh.zoning``): ledgers and health in and
    out, every record into the zone book. ``clock`` is the HLC; ``monotonic`` the worker's
    clock for heartbeats and intervals."""

    def __init__(self, settings: MeshSettings, store: MeshStore, broker: Broker, *,
                 clock: HybridClock | None = None,
                 on_records: Callable[[list[Record]], None] | None = None,
                 zones: ZoneMesh | None = None,
                 heartbeat_timeout: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], str] = utc_iso_now,
                 state_interval: float = STATE_INTERVAL) -> None:
        super().__init__("mesh", heartbeat_timeout=heartbeat_timeout, stage=Stage.BACKGROUND,
                         clock=monotonic)
        self.gate_id = store.gate_id
        self.settings = settings
        self.store = store
        self.broker = broker
        self.hlc = clock or HybridClock(store.gate_id)
        self.codec = Codec(settings.key)
        self.on_records = on_records
        self.zones = zones
        self.connected = threading.Event()
        self.peers: dict[str, Peer] = {}
        self._wall = wall
        self._state_interval = state_interval
        self.inbox = Inbox()
        self.replays = Replays(store, self.codec)
        self._unsent_from: int | None = None  # the first own record stamped while alone
        # The worker has handled this connection's start (its backlog went out): until
        # then a new record joins the backlog and the status waits, so no peer hears of a
        # number before it could have the records (it would ask for what is on its way).
        self._live = False
        self._announced_seq = -1
        self._announced_at = 0.0
        self._peer_back = False   # a peer came (back) online since our last status
        self._own_floor = 0
        self._oversized_from: set[str] = set()
        self._refused_from: set[str] = set()    # ledger topics whose refusal was said
        self._partition = Partition()
        self._saved_at = -1e9
        self._held: dict[str, int] | None = None  # every origin's highest number held
        self._quiet_stamp_at = -1e9
        self._duties_at = -1e9              # the last round of the tick's duties
        self._unstored: list[Batch] = []    # peer records received, not written yet
        self._unstored_count = 0
        self._unstored_at = 0.0             # when the oldest of them arrived
        top = store.max_stamp()
        if top is not None:  # a restart never stamps before what it already holds
            self.hlc.merge(top)
        own = store.max_stamp(store.gate_id)
        if own is not None:  # nor before its own stamps, however far ahead they ran
            self.hlc.resume(own)

    @property
    def replayed(self) -> int:
        """Own records republished on request (backlogs are not)."""
        return self.replays.replayed

    def interrupt(self) -> None:
        self.inbox.post(_WAKE)

    def notify(self) -> None:
        """A decision was journaled: stamp and publish it now (never blocks the caller)."""
        self.inbox.post(_JOURNALED)

    # -- status for people ---------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Connected or deciding alone (since when), peers, drops and conflicts: gate
        status, the kiosk's banner, metrics; persisted for ``gate status`` elsewhere."""
        connected = self.connected.is_set()
        held = self._held_tops() | {self.gate_id: self.store.own_max_seq()}
        return {
            "connected": connected,
            "deciding_alone": not connected,
            "partitioned": self._partition.said,
            "since": self._partition.since_wall,
            # list(): other threads ask (status line, kiosk) while the link adds peers.
            "peers_connected": sum(p.online for g, p in list(self.peers.items())
                                   if g != self.gate_id),
            "peers": {g: {"announced": p.announced, "online": p.online,
                          "held": held.get(g, 0)} for g, p in sorted(list(self.peers.items()))},
            "dropped": dict(self.codec.dropped),
            "conflicts": self.store.conflict_count(),
            "replayed": self.replayed,
            "clock_drift_clamped": self.hlc.drift_clamped,
        }

    def _held_tops(self) -> dict[str, int]:
        """Every origin's highest sequence number held: read once, then kept up to date
        as records are stored (only this link stores peers' records)."""
        if self._held is None:
            self._held = self.store.held_maxima()
        return self._held

    def status_line(self) -> str:
        """The mesh's part of systemd's STATUS= line (it is resent only when it changes)."""
        if self._partition.said:
            return f"mesh: deciding alone since {self._partition.since_wall}"
        if not self.connected.is_set():
            return "mesh: connecting"
        online = sum(p.online for g, p in list(self.peers.items()) if g != self.gate_id)
        return f"mesh: {online} peer(s) online"

    # -- the worker's thread -------------------------------------------------------------

    def open(self) -> None:
        """Subscribe and start connecting; the broker posts ``Connected`` once it is up."""
        self._partition.reset(self.clock(), self._wall())
        self.broker.subscribe(f"{PREFIX}/+/{SCANS}", f"{PREFIX}/+/{STATUS}",
                              f"{PREFIX}/+/{REPLAY}/{self.gate_id}",
                              f"{PREFIX}/+/{REPLAYED}/{self.gate_id}",
                              *(GATE_FILTERS if self.zones is not None else ()))
        self.broker.connect(self.inbox, will=Will(status_topic(self.gate_id),
                                                  self._status(online=False)))

    def step(self, wait: float | None = None) -> None:
        """One round: the events in the inbox (waiting up to ``wait`` for the first, a tick
        by default), then what is due: replays, stamping, the status, anti-entropy."""
        batches: list[Batch] = []
        records = 0
        stamp = news = False
        if wait is None:
            due = self.replays.due_at
            if self._unstored:
                due = min(due or math.inf, self._unstored_at + STORE_DELAY)
            wait = TICK if due is None else due - self.clock()
        try:
            event = self.inbox.get(timeout=min(TICK, max(0.0, wait)))
            while True:
                if isinstance(event, Received):
                    message = self._decode(event)
                    if isinstance(message, Batch):
                        batches.append(message)
                        records += len(message.records)
                    elif isinstance(message, Ledger | Health):
                        if self.zones is not None:
                            self.zones.heard(message)
                    elif message is not None:
                        self._handle(message)
                        news = True
                elif isinstance(event, Connected):
                    self._on_connected()
                    news = True
                elif isinstance(event, Lost):
                    self._on_lost()
                    news = True
                stamp = stamp or event is _JOURNALED
                if records >= _BATCH:
                    break
                event = self.inbox.get(timeout=0)
        except queue.Empty:
            # The inbox is drained; on a quiet tick, stamp whatever a caller forgot to notify.
            stamp = stamp or self.clock() - self._quiet_stamp_at >= QUIET_STAMP
        try:
            # Others' requests first: storing a flood of records takes a while on a busy
            # gate, and the askers' catch-up waits for this reply.
            if self.connected.is_set():
                self.replays.serve(self.clock(), self.broker.publish)
            self._defer(batches)
            if self._unstored and (self._unstored_count >= _BATCH
                                   or self.clock() - self._unstored_at >= STORE_DELAY):
                self._store_unstored()
                news = True
            if stamp:
                self._publish_new()
            now = self.clock()
            # The rest is paced by the tick, not by the messages: a venue gate wakes for
            # every scan heard, and these walk every peer (news: a status, a connection,
            # a write that anti-entropy waited for).
            if news or now - self._duties_at >= TICK:
                self._duties_at = now
                self._announce()
                if self.zones is not None:
                    online = {g for g, p in self.peers.items() if p.online}
                    self.zones.round(self.broker.publish, now, online, connected=self._live)
                self._anti_entropy()
                self._watch_partition()
        except GateError as exc:  # a database fault: say so, keep the link alive
            log.error("mesh: %s", exc)
            self.stopping.wait(TICK)

    def _decode(self, event: Received) -> Message | None:
        if len(event.payload) > MAX_PAYLOAD:  # a broker that ignored our Maximum Packet Size
            self._oversized(event.topic, len(event.payload))
            return None
        message = self.codec.decode(event.topic, event.payload)
        if message is None and event.topic.endswith(f"/{LEDGER}") \
                and event.topic not in self._refused_from:
            # A ledger refused leaves that gate's places uncounted: worth a line, once.
            self._refused_from.add(event.topic)
            log.warning("mesh: refused the ledger on %r (%s)", event.topic[:200],
                        self.codec.last_drop)
        return message

    def _oversized(self, topic: str, size: int) -> None:
        """Dropped unparsed and counted; said once per topic, not once per message."""
        self.codec.dropped["oversized"] += 1
        if topic not in self._oversized_from:
            self._oversized_from.add(topic)
            log.warning("mesh: dropped a %d-byte message on %r: larger than %d bytes",
                        size, topic[:200], MAX_PAYLOAD)

    def _defer(self, batches: list[Batch]) -> None:
        """Received batches wait for the next write (``STORE_DELAY``). Decisions see their
        records at once, and so do the zone book and ``on_records``: a record heard is as
        true before it is written as after (the book is idempotent by scan id), and a
        write that fails is fetched again from its origin."""
        if not batches:
            return
        if not self._unstored:
            self._unstored_at = self.clock()
        peers: list[Record] = []
        for batch in batches:
            self.store.stage(batch.records)
            self._unstored.append(batch)
            self._unstored_count += len(batch.records)
            if batch.gate != self.gate_id:
                peers += batch.records
        if peers and self.zones is not None:
            self.zones.records(peers)
        if peers and self.on_records is not None:
            self.on_records(peers)

    def _store_unstored(self) -> None:
        batches, self._unstored, self._unstored_count = self._unstored, [], 0
        self._store_records(batches)

    def shut(self) -> None:
        """Say offline (the will says it if we cannot), disconnect, leave a last state."""
        if self._unstored:
            try:
                self._store_unstored()
            except GateError as exc:  # their origins replay them after a restart
                log.error("mesh: %s", exc)
        if self.connected.is_set():
            self.broker.publish(status_topic(self.gate_id), self._status(online=False),
                                retain=True)
        self.broker.close(timeout=1.0)
        self._on_lost()
        with contextlib.suppress(GateError):  # a status nicety; the database may be gone
            self.store.save_link_state(self.state() | {"running": False}, self._wall())

    def _watch_partition(self) -> None:
        """One log line when the gate starts deciding alone, one when the mesh is back;
        the state is persisted for ``gate status`` in another process meanwhile."""
        now = self.clock()
        change = self._partition.observe(self.connected.is_set(), now, self._wall,
                                         grace=float(self.settings.keepalive))
        if change == "partitioned":
            log.warning("mesh: partitioned: no broker at %s; deciding alone",
                        self.settings.url)
        elif change == "healed":
            log.warning("mesh: healed: connected to %s after %.0f s deciding alone",
                        self.settings.url, self._partition.lasted)
        elif change == "connected":
            log.info("mesh: connected to %s", self.settings.url)
        if change or now - self._saved_at >= self._state_interval:
            self.store.save_link_state(self.state() | {"running": True}, self._wall())
            self._saved_at = now

    def _on_connected(self) -> None:
        self.connected.set()
        self._announced_seq = -1  # announce now, online
        for peer in self.peers.values():
            peer.asked_at, peer.asked_since_connect = 0.0, False
        self._publish_backlog()
        self._live = True
        if self.zones is not None:
            self.zones.connected()

    def _on_lost(self) -> None:
        self.connected.clear()  # this round's partition watch says so
        self._live = False

    def _publish_backlog(self) -> None:
        """What was stamped while alone goes out on the live topic as soon as the broker
        is back, before the status that announces it: no peer ever received it, and every
        peer connected already stores it without asking (a round trip and a replay per
        asker saved). A peer connecting later learns the number from the retained status
        and asks, as before; a record held already is skipped by its scan id."""
        first, self._unsent_from = self._unsent_from, None
        top = self.store.own_max_seq()
        if first is None or first > top:
            return
        for span in chunks(first, top):
            for payload in self.replays.signed(span, kind=SCANS)[0]:
                self.broker.publish(scans_topic(self.gate_id), payload)

    def _handle(self, message: Status | ReplayRequest) -> None:
        if isinstance(message, Status):
            if message.gate == self.gate_id:
                # Our own retained status: a gate restarted from an empty database goes on
                # after the sequence numbers it used before, never reusing one.
                self._own_floor = max(self._own_floor, message.seq)
                return
            peer = self.peers.setdefault(message.gate, Peer())
            if message.seq > peer.announced or (message.online and not peer.online):
                peer.asked_at = 0.0  # news (a healed split, a restart): look for gaps now
            if message.online and not peer.online:
                # A peer (back) online learns our number soon, not at our next interval:
                # the retained status it read may be that old, and what we published while
                # it was away is what it must ask for.
                self._peer_back = True
            peer.announced = max(peer.announced, message.seq)
            peer.online = message.online
        else:
            self.replays.ask(message, self.clock())

    def _store_records(self, batches: list[Batch]) -> None:
        """Per batch, not per record: the clock moves past the latest stamp (stamp text
        sorts as stamps do) and the origin's peer entry takes the highest number. Once
        stored, a batch that continues what is known complete (the live stream, a replayed
        range) extends it, so anti-entropy has nothing to count for it."""
        now = self.clock()
        fresh: list[Record] = []
        spans: list[tuple[Peer, str, int, int, bool]] = []
        for batch in batches:
            records = batch.records
            self.hlc.merge(Stamp.parse(max(map(_HLC, records))))
            seqs = sorted(map(_SEQ, records))
            peer = self.peers.setdefault(batch.gate, Peer())
            peer.announced = max(peer.announced, seqs[-1])
            peer.heard_at = now
            if batch.gate != self.gate_id:
                fresh += records
                gapless = seqs[-1] - seqs[0] + 1 == len(set(seqs))
                spans.append((peer, batch.gate, seqs[0], seqs[-1], gapless))
        if not fresh:
            return
        self.store.record_many(fresh)  # a fault raises: nothing below is claimed
        held = self._held
        for peer, origin, first, last, gapless in spans:
            if gapless and first <= peer.verified + 1 < last + 1:
                peer.verified = last
            if held is not None and held.get(origin, 0) < last:
                held[origin] = last

    def _publish_new(self) -> None:
        self._quiet_stamp_at = self.clock()
        while True:
            records = self.store.stamp_journal(self.hlc, after=self._own_floor)
            if not records:
                return
            if self.zones is not None:
                self.zones.records(records)
            if self._live:
                self._publish(records)
            elif self._unsent_from is None:
                self._unsent_from = records[0].seq

    def _publish(self, records: list[Record]) -> None:
        if records:
            for payload in self.codec.records(self.gate_id, records):
                self.broker.publish(scans_topic(self.gate_id), payload)

    def _announce(self) -> None:
        seq = self.store.own_max_seq()
        now = self.clock()
        if not self._live or seq == self._announced_seq:
            self._peer_back = False  # the retained status says it all already
            return
        since = now - self._announced_at
        if self._announced_seq >= 0 and since < STATUS_INTERVAL \
                and not (self._peer_back and since >= PEER_BACK_GAP):
            return
        self._peer_back = False
        self.broker.publish(status_topic(self.gate_id), self._status(online=True, seq=seq),
                            retain=True)
        self._announced_seq, self._announced_at = seq, now

    def _anti_entropy(self) -> None:
        if not self.connected.is_set() or self._unstored:  # what waits would look missing
            return
        # Asking waits while messages wait here: what we asked for may be among them, and
        # the origin would replay it all again (a storm that feeds itself). The first ask
        # of a peer on a connection does not: nothing of ours is in flight from it, and
        # after a split every gate is flooded with replies, so waiting for a lull asked the
        # late origins one wave at a time. (Messages are handled in order: the status that
        # brought the news was handled after the records sent before it were stored.)
        busy = not self.inbox.empty()
        held = self._held_tops()
        now = self.clock()
        interval = self.settings.anti_entropy_interval
        for origin, peer in self.peers.items():
            if origin == self.gate_id or peer.announced <= peer.verified \
                    or now - peer.asked_at < interval or (busy and peer.asked_since_connect):
                continue
            if peer.asked_at and (now - peer.heard_at < interval  # still arriving
                                  or (peer.heard_at < peer.asked_at
                                      and now - peer.asked_at < REQUEST_TIMEOUT)):  # in flight
                continue
            upto = peer.announced
            if held.get(origin, 0) <= peer.verified:  # after a split: nothing beyond, no query
                gaps = [(peer.verified + 1, upto)]
            elif self.store.holds_all(origin, upto, after=peer.verified):  # the usual case
                peer.verified = upto
                continue
            else:
                gaps = missing_ranges(self.store.held_ranges(origin, after=peer.verified),
                                      upto, after=peer.verified)
            if not gaps:
                peer.verified = upto
                continue
            if gaps[0][0] > 1:
                peer.verified = gaps[0][0] - 1
            peer.asked_at, peer.asked_since_connect = now, True
            request = ReplayRequest(self.gate_id, origin, tuple(gaps[:MAX_RANGES]))
            self.broker.publish(replay_topic(self.gate_id, origin), self.codec.replay(request))

    def _status(self, *, online: bool, seq: int | None = None) -> bytes:
        if seq is None:
            seq = self.store.own_max_seq()
        return self.codec.status(Status(self.gate_id, seq, online))
