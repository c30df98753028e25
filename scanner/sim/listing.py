"""One event's ticket set and its listing order, without storing the base tickets.

The listing is sorted by (updatedAt, _id). Base tickets were created one every ``step_ms``
and never touched, so they sort by index. Every change gets a world timestamp later than
anything before it, so changed and sold tickets ("moved") follow all untouched base tickets
in the order they changed. A listing is therefore: base indices in the window minus the
touched ones, then the moved tickets in the window. Both parts are found with arithmetic
and bisect, so a page costs O(top + log n) whatever the event's size.

Not thread-safe: ``World`` holds the lock.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Any

from scanner.sim.generate import EventSpec

# A page entry: a base index to render, or a changed ticket's stored document.
Ref = int | dict[str, Any]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class EventTickets:
    def __init__(self, spec: EventSpec, n_base: int) -> None:
        self.spec = spec
        self.n_base = n_base
        self.n_total = n_base                    # base plus every ticket ever sold
        self.overlay: dict[int, dict[str, Any] | None] = {}   # None: deleted
        # index -> updatedAt ms of live changed or sold tickets. Insertion order is sort
        # order because every change is stamped later than all before it.
        self.moved: dict[int, int] = {}
        self.touched: list[int] = []             # sorted base indices present in overlay
        self._snapshot: tuple[list[int], list[int]] | None = None

    # -- state -------------------------------------------------------------------------

    def get(self, i: int) -> dict[str, Any] | None:
        """The current document of ticket ``i``, or None if deleted or never sold."""
        if i in self.overlay:
            return self.overlay[i]
        return self.spec.render(i) if 0 <= i < self.n_base else None

    def put(self, i: int, doc: dict[str, Any], updated_ms: int) -> None:
        """Store a changed or sold ticket; it moves to the end of the listing."""
        self._touch(i)
        self.overlay[i] = doc
        self.moved.pop(i, None)
        self.moved[i] = updated_ms
        self.n_total = max(self.n_total, i + 1)

    def remove(self, i: int) -> None:
        """Hard delete: the ticket is no longer listed."""
        self._touch(i)
        self.overlay[i] = None
        self.moved.pop(i, None)

    def _touch(self, i: int) -> None:
        if i < self.n_base and i not in self.overlay:
            insort(self.touched, i)
        self._snapshot = None

    def _moved_sorted(self) -> tuple[list[int], list[int]]:
        if self._snapshot is None:
            self._snapshot = (list(self.moved.values()), list(self.moved))
        return self._snapshot

    # -- listing -----------------------------------------------------------------------

    def _base_range(self, from_us: int | None, until_us: int | None) -> tuple[int, int]:
        """Base indices [lo, hi) whose updatedAt lies in [from, until)."""
        t0_us, step_us = self.spec.epoch_ms * 1000, self.spec.step_ms * 1000
        lo = 0 if from_us is None else _ceil_div(from_us - t0_us, step_us)
        hi = self.n_base if until_us is None else _ceil_div(until_us - t0_us, step_us)
        lo = min(max(lo, 0), self.n_base)
        return lo, min(max(hi, lo), self.n_base)

    def _moved_range(self, from_us: int | None, until_us: int | None) -> tuple[int, int]:
        stamps, _ = self._moved_sorted()
        start = 0 if from_us is None else bisect_left(stamps, _ceil_div(from_us, 1000))
        end = len(stamps) if until_us is None else bisect_left(stamps, _ceil_div(until_us, 1000))
        return start, max(start, end)

    def _nth_untouched(self, lo: int, k: int) -> int:
        """The k-th (0-based) base index >= lo that is not touched."""
        first = bisect_left(self.touched, lo)
        x = lo + k
        while True:
            # Each touched index at or below x pushes the answer one further right.
            nxt = lo + k + bisect_left(self.touched, x + 1) - first
            if nxt == x:
                return x
            x = nxt

    def page(self, skip: int, top: int, from_us: int | None = None,
             until_us: int | None = None) -> tuple[list[Ref], int]:
        """The refs on one page of the listing filtered to [from, until), and its total."""
        lo, hi = self._base_range(from_us, until_us)
        touched_in = bisect_left(self.touched, hi) - bisect_left(self.touched, lo)
        base_count = hi - lo - touched_in
        m_start, m_end = self._moved_range(from_us, until_us)
        total = base_count + m_end - m_start
        refs: list[Ref] = []
        if skip < base_count:
            x = self._nth_untouched(lo, skip)
            p = bisect_left(self.touched, x)
            while len(refs) < top and x < hi:
                if p < len(self.touched) and self.touched[p] == x:
                    p += 1
                else:
                    refs.append(x)
                x += 1
        if len(refs) < top:
            _, order = self._moved_sorted()
            begin = m_start + max(0, skip - base_count)
            for i in order[begin:min(m_end, begin + top - len(refs))]:
                doc = self.overlay[i]
                assert doc is not None  # moved holds live tickets only
                refs.append(doc)
        return refs, total

    def render(self, refs: list[Ref]) -> list[dict[str, Any]]:
        render = self.spec.render
        return [render(r) if isinstance(r, int) else r for r in refs]

    def all_refs(self) -> Iterator[Ref]:
        """The whole listing in order (unfiltered)."""
        for i in range(self.n_base):
            if i not in self.overlay:
                yield i
        _, order = self._moved_sorted()
        for i in order:
            doc = self.overlay[i]
            assert doc is not None
            yield doc
