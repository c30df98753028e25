"""What the gates tell each other, signed with the venue key, and parsed strictly.

Every payload is an envelope ``{"kind", "body", "mac"}``: ``mac`` is HMAC-SHA256 (venue key)
over the canonical JSON of ``{"kind", "body"}`` (orjson, sorted keys), so a device on the
venue Wi-Fi without the key cannot inject an "inside" record that would lock people out.
The topic must agree with the body: a scan or status under ``gates/<g>/...`` must come
from gate ``g`` (the broker's ACL lets a gate publish only under its own name; the MAC lets
no one without the key publish at all). Replayed scans are ordinary scans: receiving one
twice changes nothing (idempotent by scan id).

A record is an array of the 11 decision fields; an entry a person or the turnstile made
(an override, a manual release, an alarm) adds who and why as 5 more. A plain scan stays
11 long, so a gate that knows only 11 still reads every scan, and a record of 11 from such
a gate is as valid as ever.

Topics (every one under the publishing gate's own name, as the ACL demands):

    gates/<g>/scans             a Batch: records of gate g (one when live, many in a
                                replay), QoS 1
    gates/<g>/status            retained Status: g's latest sequence number, online flag
    gates/<g>/replay/<origin>   g asks <origin> to publish the sequence ranges it misses
    gates/<g>/replayed/<asker>  a Batch of g's records for <asker> only (its replay request)
    gates/<g>/ledger            retained Ledger: g's zone and its escrowed places
                                (``scanner.zones.escrow``)
    gates/<g>/health            retained Health: g's readers, upload queue, version, alarms
                                (what the control room shows)

``Codec.decode`` never raises: anything malformed, unauthenticated or on the wrong topic is
dropped and counted in ``Codec.dropped`` by cause.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import operator
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import orjson

from scanner.errors import ConfigError
from scanner.secret_file import read_secret
from scanner.zones.escrow import Ledger

PREFIX = "gates"
SCANS, STATUS, REPLAY, REPLAYED = "scans", "status", "replay", "replayed"
LEDGER, HEALTH = "ledger", "health"
MAX_HEALTH_ITEMS = 64   # readers or alarms in one health message
MAX_HEALTH_TEXT = 200   # characters of any one name or alarm
MIN_KEY_BYTES = 16
# The largest sequence number: SQL's largest integer (SQLite's, PostgreSQL's bigint). JSON
# carries up to 2**64 - 1, and a record numbered beyond this one could not be stored.
MAX_SEQ = 2**63 - 1
# A replay request names at most this many ranges; a gate missing more asks again.
MAX_RANGES = 64
# A replay of thousands of records goes as a few messages of this size, not thousands of
# messages: the broker's fan-out and each gate's HMAC check are per message. Half of
# MAX_PAYLOAD, the venue broker's message_size_limit (deploy/mosquitto/mosquitto.conf).
BATCH_BYTES = 512 * 1024
MAX_BATCH_RECORDS = 5000
# No gate sends more in one message; a larger one is refused before it is parsed.
MAX_PAYLOAD = 1024 * 1024
# The whole MQTT packet around such a payload: a topic of two gate names of at most 64
# characters (4 UTF-8 bytes each), the fixed header, packet id and MQTT 5 properties.
MAX_PACKET = MAX_PAYLOAD + 1024


def scans_topic(gate: str) -> str:
    return f"{PREFIX}/{gate}/{SCANS}"


def status_topic(gate: str) -> str:
    return f"{PREFIX}/{gate}/{STATUS}"


def ledger_topic(gate: str) -> str:
    return f"{PREFIX}/{gate}/{LEDGER}"


def health_topic(gate: str) -> str:
    return f"{PREFIX}/{gate}/{HEALTH}"


def replay_topic(requester: str, origin: str) -> str:
    return f"{PREFIX}/{requester}/{REPLAY}/{origin}"


def replayed_topic(origin: str, requester: str) -> str:
    return f"{PREFIX}/{origin}/{REPLAYED}/{requester}"


def load_key(path: str | os.PathLike[str]) -> bytes:
    """The venue key from its own private file (``scanner.secret_file``), at least 16 bytes."""
    key = read_secret(path, "mesh.key_file").strip()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"mesh.key_file: the key must be at least {MIN_KEY_BYTES} bytes")
    return key


class Record(NamedTuple):
    """One journaled decision of gate ``gate``, as every gate of the venue stores it. A
    tuple: on the wire it is an array in this field order, and a row of ``mesh_scans``."""

    scan_id: str
    gate: str              # the origin: the gate that decided, journaled and uploads it
    seq: int               # the origin's own sequence number, 1, 2, 3 ... without gaps
    hlc: str               # HLC stamp; history is ordered by it
    ticket_id: str | None
    event_id: str | None
    barcode: str
    direction: str         # IN | OUT
    result: str            # OK | FAIL
    reason: str
    scanned_at: str        # the origin's corrected wall time, ISO UTC ms, for people
    # Who made an entry no read made, and why (``scanner.journal.supervision``): an
    # override, a held ticket's answer, a manual release, a passage alarm. None for a scan.
    role: str | None = None      # supervisor | steward | button | gate
    session: str | None = None   # a tag of the kiosk session, never the session
    why: str | None = None       # a code: an override's reason, an alarm's
    note: str | None = None      # the supervisor's own words, one line
    answers: str | None = None   # the scan it answers: an override's denial, a held one

    @property
    def admission(self) -> bool:
        return self.result == "OK" and self.direction == "IN"


@dataclass(frozen=True, slots=True)
class Batch:
    """Records of one gate, in one message."""

    gate: str
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class Status:
    gate: str
    seq: int               # the latest sequence number the gate has published
    online: bool


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    requester: str
    origin: str
    ranges: tuple[tuple[int, int], ...]  # inclusive (first, last) sequence numbers


@dataclass(frozen=True, slots=True)
class Health:
    """What a gate shows of itself to the control room."""

    gate: str
    zone: str
    version: str
    at: str                        # the gate's time of this message, ISO UTC
    readers: dict[str, bool]       # reader name -> reading
    queue: int                     # decisions waiting for upload
    alarms: tuple[str, ...] = ()   # codes: "fire", "reader:<name>" (a reader's fault)


Message = Batch | Status | ReplayRequest | Ledger | Health
_RECORD_LENGTH = len(Record._fields)
DECISION_FIELDS = Record._fields.index("role")   # a record without who and why
decision_of = operator.itemgetter(slice(0, DECISION_FIELDS))
_NO_WHO = [None] * (_RECORD_LENGTH - DECISION_FIELDS)
_LENGTHS = {DECISION_FIELDS, _RECORD_LENGTH}
_DIRECTIONS, _RESULTS = {"IN", "OUT"}, {"OK", "FAIL"}
_AVERAGE_RECORD_BYTES = 200  # a first guess at how many records fill BATCH_BYTES


class Codec:
    def __init__(self, key: bytes) -> None:
        self._key = key
        self.dropped: Counter[str] = Counter()
        self.last_drop = ""   # why the last message dropped was, in a line

    # -- encoding ------------------------------------------------------------------------

    def record(self, record: Record) -> bytes:
        """One record as a batch of one (a live scan)."""
        [payload] = self.records(record.gate, [record])
        return payload

    def records(self, gate: str, records: Sequence[Record], *,
                kind: str = SCANS) -> list[bytes]:
        """Records of ``gate`` as few payloads of at most about ``BATCH_BYTES`` each
        (``kind`` REPLAYED for a replay addressed to one gate), in their order.

        Entries with who and why (16 fields) go in payloads of their own: a gate of a
        version before them drops any batch holding one, and would then lose the scans
        beside it too while a venue's gates are upgraded one by one."""
        payloads: list[bytes] = []
        step = min(MAX_BATCH_RECORDS, max(1, BATCH_BYTES // _AVERAGE_RECORD_BYTES))
        for entries, run in itertools.groupby(records, key=lambda r: r.role is not None):
            # orjson writes lists, not NamedTuples; a scan without who and why as 11 fields
            shape = list if entries else lambda r: list(decision_of(r))
            rows = [shape(r) for r in run]
            start = 0
            while start < len(rows):
                chunk = rows[start:start + step]
                payload = self._seal(kind, {"gate": gate, "records": chunk})
                if len(payload) > BATCH_BYTES and len(chunk) > 1:
                    step = max(1, len(chunk) * BATCH_BYTES // len(payload))  # fewer, again
                    continue
                payloads.append(payload)
                start += len(chunk)
        return payloads

    def status(self, status: Status) -> bytes:
        return self._seal(STATUS, asdict(status))

    def ledger(self, ledger: Ledger) -> bytes:
        return self._seal(LEDGER, ledger.to_json())

    def health(self, health: Health) -> bytes:
        body = asdict(health)
        body["alarms"] = list(health.alarms)
        return self._seal(HEALTH, body)

    def replay(self, request: ReplayRequest) -> bytes:
        return self._seal(REPLAY, {"requester": request.requester, "origin": request.origin,
                                   "ranges": [list(r) for r in request.ranges]})

    def _seal(self, kind: str, body: dict[str, Any]) -> bytes:
        return orjson.dumps({"kind": kind, "body": body, "mac": self._mac(kind, body)})

    def _mac(self, kind: str, body: Any) -> str:
        signed = orjson.dumps({"kind": kind, "body": body}, option=orjson.OPT_SORT_KEYS)
        return hmac.new(self._key, signed, hashlib.sha256).hexdigest()

    # -- decoding ------------------------------------------------------------------------

    def decode(self, topic: str, payload: bytes) -> Message | None:
        """The message, or None (counted by cause) for anything not exactly right."""
        try:
            return self._decode(topic, payload)
        except _Drop as drop:
            self.dropped[drop.cause] += 1
            self.last_drop = drop.detail or drop.cause
        except Exception:  # never let a hostile payload raise out of the link
            self.dropped["malformed"] += 1
            self.last_drop = "malformed"
        return None

    def _decode(self, topic: str, payload: bytes) -> Message:
        if len(payload) > MAX_PAYLOAD:
            raise _Drop("oversized")
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise _Drop("garbage") from None
        if not isinstance(doc, dict) or set(doc) != {"kind", "body", "mac"}:
            raise _Drop("malformed")
        kind, body, mac = doc["kind"], doc["body"], doc["mac"]
        if not isinstance(mac, str) or not isinstance(kind, str) \
                or not hmac.compare_digest(mac, self._mac(kind, body)):
            raise _Drop("bad_mac")
        parts = topic.split("/")
        if len(parts) < 3 or parts[0] != PREFIX or parts[2] != kind \
                or len(parts) != (4 if kind in (REPLAY, REPLAYED) else 3):
            raise _Drop("wrong_topic")
        if not isinstance(body, dict):
            raise _Drop("malformed")
        message = _parse(kind, body)
        sender = message.requester if isinstance(message, ReplayRequest) else message.gate
        if sender != parts[1] or (isinstance(message, ReplayRequest)
                                  and message.origin != parts[3]):
            raise _Drop("wrong_topic")
        return message


class _Drop(Exception):
    def __init__(self, cause: str, detail: str = "") -> None:
        self.cause = cause
        self.detail = detail


def _parse(kind: str, body: dict[str, Any]) -> Message:
    if kind in (SCANS, REPLAYED):
        gate, records = body.get("gate"), body.get("records")
        if set(body) != {"gate", "records"} or not isinstance(gate, str) or not gate \
                or not isinstance(records, list) or not 1 <= len(records) <= MAX_BATCH_RECORDS:
            raise _Drop("malformed")
        return Batch(gate, _records(gate, records))
    if kind == STATUS:
        gate, seq, online = body.get("gate"), body.get("seq"), body.get("online")
        if set(body) != {"gate", "seq", "online"} or not isinstance(gate, str) \
                or type(seq) is not int or not 0 <= seq <= MAX_SEQ \
                or not isinstance(online, bool):
            raise _Drop("malformed")
        return Status(gate, seq, online)
    if kind == LEDGER:
        try:
            return Ledger.from_json(body)
        except ValueError as exc:
            raise _Drop("malformed", f"malformed: {exc}") from None
    if kind == HEALTH:
        return _health(body)
    if kind == REPLAY:
        requester, origin, ranges = body.get("requester"), body.get("origin"), body.get("ranges")
        if set(body) != {"requester", "origin", "ranges"} or not isinstance(requester, str) \
                or not isinstance(origin, str) or not isinstance(ranges, list) \
                or len(ranges) > MAX_RANGES:
            raise _Drop("malformed")
        spans: list[tuple[int, int]] = []
        for span in ranges:
            if not (isinstance(span, list) and len(span) == 2
                    and all(type(n) is int for n in span)
                    and 1 <= span[0] <= span[1] <= MAX_SEQ):
                raise _Drop("malformed")
            spans.append((span[0], span[1]))
        return ReplayRequest(requester, origin, tuple(spans))
    raise _Drop("malformed")


def _health(body: dict[str, Any]) -> Health:
    keys = {"gate", "zone", "version", "at", "readers", "queue", "alarms"}
    readers, alarms, queue = body.get("readers"), body.get("alarms"), body.get("queue")
    texts = [body.get(k) for k in ("gate", "zone", "version", "at")]
    if set(body) != keys or not all(_short(t) for t in texts) \
            or not isinstance(readers, dict) or len(readers) > MAX_HEALTH_ITEMS \
            or not all(_short(k) and isinstance(v, bool) for k, v in readers.items()) \
            or not isinstance(alarms, list) or len(alarms) > MAX_HEALTH_ITEMS \
            or not all(_short(a) for a in alarms) or type(queue) is not int or queue < 0:
        raise _Drop("malformed")
    gate, zone, version, at = map(str, texts)
    return Health(gate, zone, version, at, dict(readers), queue, tuple(alarms))


def _short(text: Any) -> bool:
    return isinstance(text, str) and 0 < len(text) <= MAX_HEALTH_TEXT and text.isprintable()


_as_record = functools.partial(tuple.__new__, Record)  # Record._make without its checks
_STR, _TEXT_OR_NONE = {str}, {str, type(None)}


def _records(gate: str, items: list[Any]) -> tuple[Record, ...]:
    """The records of a batch from ``gate``; any fault drops the whole message. Checked
    column by column with C-level set operations, not record by record: a replay brings
    tens of thousands, and per-record Python checks were the largest cost of catching up."""
    if set(map(type, items)) != {list}:
        raise _Drop("malformed")
    lengths = set(map(len, items))
    if not lengths <= _LENGTHS:
        raise _Drop("malformed")
    supervised = _RECORD_LENGTH in lengths
    if supervised:  # entries among the scans: who and why checked, scans padded
        if any(len(i) == _RECORD_LENGTH and i[DECISION_FIELDS] is None for i in items):
            raise _Drop("malformed")     # who and why come with a role, or not at all
        items = [i if len(i) == _RECORD_LENGTH else i + _NO_WHO for i in items]
        columns = list(zip(*items, strict=True))
        who = tuple(itertools.chain.from_iterable(columns[DECISION_FIELDS:]))
        if not (set(map(type, who)) <= _TEXT_OR_NONE and "" not in who
                and all(map(_short, filter(None, who)))):
            raise _Drop("malformed")
    else:
        columns = list(zip(*items, strict=True))
    scan_ids, origins, seqs, hlcs, tickets, events, barcodes, directions, results, reasons, \
        ats = columns[:DECISION_FIELDS]
    if set(origins) != {gate}:
        raise _Drop("wrong_topic")
    if not (set(map(type, seqs)) == {int} and min(seqs) >= 1 and max(seqs) <= MAX_SEQ
            and set(directions) <= _DIRECTIONS and set(results) <= _RESULTS
            and set(map(type, scan_ids + barcodes + reasons + ats + hlcs)) == _STR
            and set(map(type, tickets + events)) <= _TEXT_OR_NONE):
        raise _Drop("malformed")
    # Every stamp has the one length of a stamp of this gate, so the joined text matches
    # the repeated pattern only if each stamp matches it.
    pattern, length = _stamps_of(gate)
    if set(map(len, hlcs)) != {length} or pattern.fullmatch("".join(hlcs)) is None:
        raise _Drop("malformed")
    # Scans only (the common case): padded to a Record's length in C, no Python per record.
    return tuple(map(_as_record, items if supervised
                     else map(operator.add, items, itertools.repeat(_NO_WHO))))


@functools.lru_cache(maxsize=256)
def _stamps_of(gate: str) -> tuple[re.Pattern[str], int]:
    """Stamps made by ``gate`` (``Stamp`` text with its node), one after another, and the
    length of one."""
    return re.compile(r"(?:[0-9]{13}-[0-9]{6}-" + re.escape(gate) + ")+"), 21 + len(gate)
