"""Shift-safe offset paging over vivenu's ticket list.

The list is paged with ``top``/``skip`` and its sort order is undocumented; what we rely on
is only that tickets that stay in the listing keep their relative order between requests.
Offsets are not stable: when a ticket leaves the listing (it changed, so its ``updatedAt``
moved past the pinned ``until``, or it was deleted) every later ticket shifts one place
left, and a naive ``skip += top`` silently misses one ticket per shift.

Design:

- A run pins the window: a full sync asks ``until = T0`` (server time at its start) on every
  page, so the listing can only lose tickets while we page; a delta pins ``from`` and
  ``until`` the same way.
- Each request after the first re-reads ``overlap`` tickets (``skip = next - overlap``) and
  looks for the anchor: the last tickets consumed so far, each known by id *and*
  ``updatedAt``, so a ticket that changed and moved elsewhere in the order (a window whose
  ``until`` lies ahead keeps changed tickets, at its end) never passes for an anchor.
  Where the newest anchor is found,
  the page is aligned, and only the tickets after it are new. If the list did not shift,
  the anchor sits at the end of the overlap; if it shifted (the anchor is elsewhere, or
  ``total`` changed) the position found realigns the cursor.
- If no anchor id is in the page (more than ``overlap`` tickets before it vanished), the
  pager steps back, first by the drop in ``total`` and then by doubling distances in
  windows that overlap, until it finds an anchor, at most ``max_realign`` requests; else
  PagingError. Nothing is written for a page until it is aligned, so the store stays
  consistent and the caller's committed cursor is still valid.
- A page holding more tickets than its own ``total`` leaves past its offset is a lie (a
  listing that wraps round or never ends): PagingError.
- A full page that brings no new ticket can happen once while realigning (the anchor found
  last); a second in a row means the listing repeats itself (a server ignoring ``skip``),
  and paging it would never end: PagingError.
- Tickets that changed during paging left the window and were not read; the caller always
  completes a full sync with a catch-up delta ``from = T0 - window_overlap`` that reads
  them at their new ``updatedAt``. Deleted tickets are dropped by the reconciling sweep.

The pager is pure: it receives a ``fetch(skip, top)`` function and yields aligned pages
with the cursor to store after each, which is all a killed run needs to resume.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from scanner.errors import PagingError, TooManyTickets

log = logging.getLogger("scanner.sync")

# Tickets re-read at the start of each page to check that the list did not shift.
DEFAULT_OVERLAP = 8
# Ids remembered as the anchor: more than the overlap, so the pager still realigns when
# the last few tickets it read have themselves changed.
ANCHOR_SIZE = 32
# Requests spent looking for a lost anchor before the run gives up.
MAX_REALIGN = 12


class _Page(Protocol):
    @property
    def tickets(self) -> list[Any]: ...  # tuples in Ticket's order: [0] id, [8] updatedAt

    @property
    def total(self) -> int: ...

    @property
    def problems(self) -> tuple[tuple[int, str], ...]: ...  # (index, line) not admissible


Fetch = Callable[[int, int], _Page]


@dataclass(frozen=True)
class Cursor:
    """Where a paged run stands: the next offset, the anchor ids, the total last seen."""

    skip: int = 0
    anchor: tuple[str, ...] = ()   # anchor keys, oldest first (see ``anchor_key``)
    total: int | None = None


def effective_overlap(page_size: int, overlap: int = DEFAULT_OVERLAP) -> int:
    """The tickets each request re-reads: at least one new ticket per request, or paging
    would never advance."""
    return max(1, min(overlap, page_size // 2))


def next_skip(skip: int, page_size: int, overlap: int = DEFAULT_OVERLAP) -> int:
    """The offset ``pages`` asks for after reading ``skip`` when the list did not shift:
    a caller may download it ahead (a shift makes the pager ask elsewhere)."""
    return skip + page_size - effective_overlap(page_size, overlap)


def anchor_key(ticket: Any) -> str:
    """A ticket as an anchor: the same id at another ``updatedAt`` is another anchor.
    Indexed, not by name: a Ticket and the store's row of it (``stored_row``) both work."""
    return f"{ticket[0]}@{ticket[8]}"


@dataclass(frozen=True)
class Page:
    tickets: list[Any]   # the new tickets, in listing order, aligned past the anchor
    cursor: Cursor       # the cursor to store once these tickets are committed
    requests: int        # HTTP requests this page took (more than 1 after a realignment)
    last: bool
    problems: tuple[str, ...] = ()   # the new tickets stored not admissible, one line each


def pages(fetch: Fetch, *, page_size: int, cursor: Cursor | None = None,
          overlap: int = DEFAULT_OVERLAP, anchor_size: int = ANCHOR_SIZE,
          max_realign: int = MAX_REALIGN, max_tickets: int | None = None) -> Iterator[Page]:
    """Aligned pages of the listing from ``cursor`` (the start by default) to its end.

    A listing whose ``total`` passes ``max_tickets`` raises TooManyTickets before its page
    is yielded, so a total that keeps growing stops there."""
    if page_size < 2:
        raise ValueError("page_size must be at least 2 to overlap pages")
    overlap = effective_overlap(page_size, overlap)
    cursor = cursor or Cursor()
    stalled = False   # the last full page brought no new ticket
    while True:
        docs, at, start, requests = _aligned(fetch, cursor, page_size, overlap, max_realign)
        tickets = docs.tickets
        if len(tickets) > max(docs.total - at, 0):
            # Not a shift: no listing holds more past an offset than its total leaves. A
            # server wrapping round or inventing tickets there would be paged for ever.
            raise PagingError(f"ticket listing goes past the total it claims: {len(tickets)} "
                              f"tickets at offset {at} of {docs.total}")
        if max_tickets is not None and docs.total > max_tickets:
            raise TooManyTickets(f"ticket listing claims {docs.total} tickets, more than "
                                 f"sync.max_event_tickets ({max_tickets}); nothing more read")
        problems = tuple(line for index, line in docs.problems if index >= start)
        cursor = Cursor(skip=at + len(tickets), total=docs.total,
                        anchor=_next_anchor(cursor.anchor, tickets, anchor_size))
        # A short page ends the listing where ``total`` agrees or it brought nothing new: a
        # server serving fewer than ``top`` a page (a cap below the API's 1,000) would
        # otherwise end every run after its first page, and the tickets beyond it would
        # never reach the store.
        last = len(tickets) < page_size and (cursor.skip >= docs.total or start >= len(tickets))
        if not last and 2 <= len(tickets) < page_size:
            log.info("sync: the server serves %d tickets a page of the %d asked for; asking "
                     "for %d", len(tickets), page_size, len(tickets))
            # The page downloaded ahead is then the one asked for next.
            page_size = len(tickets)
            overlap = effective_overlap(page_size, overlap)
        if not last and start >= len(tickets):
            if stalled:
                raise PagingError(f"ticket listing repeats itself near offset {cursor.skip}: "
                                  f"two full pages in a row brought no new ticket")
            stalled = True
        else:
            stalled = False
        yield Page(tickets[start:], cursor, requests, last, problems)
        if last:
            return


def _aligned(fetch: Fetch, cursor: Cursor, page_size: int, overlap: int,
             max_realign: int) -> tuple[_Page, int, int, int]:
    """The next page, the offset it was read at and the index of its first new ticket."""
    if not cursor.anchor:
        return fetch(cursor.skip, page_size), cursor.skip, 0, 1
    rank = {ticket_id: i for i, ticket_id in enumerate(cursor.anchor)}
    expected = min(overlap, cursor.skip) - 1   # where the newest anchor id should be
    offsets = _offsets(max(0, cursor.skip - overlap), page_size, overlap)
    tried: set[int] = set()
    at: int | None = next(offsets)
    for requests in range(1, max_realign + 2):
        assert at is not None
        tried.add(at)
        page = fetch(at, page_size)
        found = _find_anchor(page.tickets, rank)
        if found is not None:
            if requests > 1 or found != expected or page.total != cursor.total:
                log.debug("pager: list shifted (total %s -> %s); realigned at offset %d",
                          cursor.total, page.total, at + found)
            return page, at, found + 1, requests
        if page.total == 0:
            return page, at, 0, requests    # everything left the window: nothing to read
        # Tickets before the cursor vanished: step back by the drop in total first.
        drop = (cursor.total or 0) - page.total
        hinted = max(0, at - drop) if drop > 0 and requests == 1 else None
        at = hinted if hinted is not None and hinted not in tried else next(offsets, None)
        while at is not None and at in tried:
            at = next(offsets, None)
        if at is None:
            break
    raise PagingError(f"ticket list shifted beyond recovery near offset {cursor.skip}: "
                      f"none of the last {len(cursor.anchor)} tickets read is listed any more")


def _offsets(first: int, page_size: int, overlap: int) -> Iterator[int]:
    """``first``, then offsets stepping back by doubling distances down to 0; windows of
    ``page_size`` keep overlapping so no position between them goes unsearched."""
    yield first
    at, step = first, 2 * overlap
    while at > 0:
        at = max(0, at - min(step, page_size - overlap))
        step *= 2
        yield at


def _find_anchor(tickets: list[Any], rank: dict[str, int]) -> int | None:
    """Index of the newest anchor in ``tickets`` (anchors keep their relative order)."""
    # The highest rank, not len(rank) - 1: a repeated anchor key leaves gaps in the ranks.
    newest = max(rank.values(), default=None)
    best, best_rank = None, -1
    for index, ticket in enumerate(tickets):
        position = rank.get(anchor_key(ticket))
        if position is not None and position > best_rank:
            best, best_rank = index, position
            if best_rank == newest:  # nothing later can rank higher: stop reading the page
                break
    return best


def _next_anchor(previous: tuple[str, ...], tickets: list[Any],
                 size: int) -> tuple[str, ...]:
    ids = [anchor_key(t) for t in tickets[-size:]]
    if len(ids) < size:  # a short page: keep older anchor ids in front of its own
        present = set(ids)
        ids = [a for a in previous if a not in present][-(size - len(ids)):] + ids
    return tuple(ids)
