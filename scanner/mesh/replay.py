"""Replaying this gate's own records to the peers that ask: the origin's half of catch-up.

After a split every gate asks each origin for the same ranges within a moment: requests are
gathered for ``REPLAY_GATHER``, each range is read and signed once for all its askers, and a
range replayed to a gate is not replayed to it again within ``REPLAY_HOLDOFF``. Each asker
gets its replay on its own topic: a broadcast would have every gate parse every replay of
the venue, also the half of a split that holds it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator

from scanner.mesh.message import REPLAYED, Codec, ReplayRequest, replayed_topic
from scanner.mesh.peer_journal import MeshStore

Span = tuple[int, int]  # inclusive (first, last) sequence numbers
REPLAY_HOLDOFF = 2.0   # a range replayed to one gate this recently is not replayed again
REPLAY_GATHER = 0.15
CHUNK = 5000           # own records read per query
_SIGNED_RANGES = 64    # signed payloads kept (own records never change)
_FORGET_AFTER = 10_000  # askers remembered before the ones past the holdoff are dropped


def merged(spans: Iterable[Span]) -> list[Span]:
    """``spans`` as sorted disjoint ranges, overlapping or adjacent ones joined."""
    out: list[Span] = []
    for first, last in sorted(spans):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def without(spans: list[Span], taken: list[Span]) -> list[Span]:
    """The parts of ``spans`` (sorted, disjoint) outside every range of ``taken`` (sorted):
    one walk of both, so a long list of ranges replayed costs no more per request."""
    out: list[Span] = []
    i = 0
    for first, last in spans:
        while i < len(taken) and taken[i][1] < first:
            i += 1
        start, j = first, i
        while j < len(taken) and taken[j][0] <= last and start <= last:
            if taken[j][0] > start:
                out.append((start, taken[j][0] - 1))
            start = max(start, taken[j][1] + 1)
            j += 1
        if start <= last:
            out.append((start, last))
    return out


def chunks(first: int, last: int) -> Iterator[Span]:
    for start in range(first, last + 1, CHUNK):
        yield start, min(last, start + CHUNK - 1)


class Replays:
    """Requests gathered from peers, served on ``serve``; ``replayed`` counts the records
    republished on request."""

    def __init__(self, store: MeshStore, codec: Codec) -> None:
        self.store = store
        self.codec = codec
        self.replayed = 0
        self.due_at: float | None = None  # when the gathered requests are served
        self._due: dict[str, list[Span]] = {}  # asker -> sorted disjoint ranges
        # asker -> (range, when) replayed, sorted by range
        self._replayed: dict[str, list[tuple[Span, float]]] = {}
        self._signed: OrderedDict[tuple[str, int, int], tuple[list[bytes], int]] = OrderedDict()

    def ask(self, request: ReplayRequest, now: float) -> None:
        """Gather ``request``'s ranges, cut at this gate's highest sequence number (a range
        past it holds nothing to replay, and one up to 2**64 would be read a chunk at a
        time for ever), merged with what is due for the asker, less what was replayed to
        it within the holdoff: ranges that overlap or shift by one, each new, would
        otherwise have one message send the whole history many times over."""
        asker = request.requester
        top = self.store.own_max_seq()
        recent = [span for span, at in self._replayed.get(asker, ())
                  if now - at < REPLAY_HOLDOFF]
        wanted = [*self._due.get(asker, ()),
                  *((first, min(last, top)) for first, last in request.ranges if first <= top)]
        self._due[asker] = without(merged(wanted), recent)
        if self.due_at is None:
            self.due_at = now + REPLAY_GATHER

    def serve(self, now: float, publish: Callable[[str, bytes], None]) -> None:
        """Publish what is due, to each asker alone."""
        if not self._due or self.due_at is None or now < self.due_at:
            return
        due, self._due, self.due_at = self._due, {}, None
        gate = self.store.gate_id
        for asker, spans in due.items():
            self._replayed[asker] = sorted([
                *((span, at) for span, at in self._replayed.get(asker, ())
                  if now - at < REPLAY_HOLDOFF),
                *((span, now) for span in spans)])
            for first, last in spans:
                for span in chunks(first, last):
                    payloads, count = self.signed(span)
                    for payload in payloads:
                        publish(replayed_topic(gate, asker), payload)
                    self.replayed += count
        if len(self._replayed) > _FORGET_AFTER:
            self._replayed = {asker: spans for asker, spans in self._replayed.items()
                              if any(now - at < REPLAY_HOLDOFF for _span, at in spans)}

    def signed(self, span: Span, *, kind: str = REPLAYED) -> tuple[list[bytes], int]:
        """The payloads of own records first..last and how many records they hold (the
        batch names no asker, so one signature serves every asker's topic)."""
        key = (kind, *span)
        signed = self._signed.get(key)
        if signed is not None:
            self._signed.move_to_end(key)
            return signed
        records = self.store.local_range(*span)
        signed = self.codec.records(self.store.gate_id, records, kind=kind), len(records)
        if len(records) == span[1] - span[0] + 1:  # complete: it can never change
            self._signed[key] = signed
            if len(self._signed) > _SIGNED_RANGES:
                self._signed.popitem(last=False)
        return signed
