"""The shift-safe pager against a plain list that changes between requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pytest

from scanner.errors import PagingError, TooManyTickets
from scanner.sync.pager import Cursor, pages


class Item(NamedTuple):
    """A ticket as the pager reads it: a tuple in Ticket's order, id first, updatedAt 9th."""

    id: str
    barcode: str = ""
    event_id: str = ""
    status: str = ""
    ticket_type_id: str = ""
    ticket_name: str = ""
    seller_id: str = ""
    created_at: str = ""
    updated_at: str = "2030-01-01T00:00:00.000Z"


class Listing(NamedTuple):
    tickets: list[Item]
    total: int
    problems: tuple[tuple[int, str], ...] = ()


def listing(ids: list, after_each: Callable[[int], None] = lambda _n: None,
            log: list[int] | None = None):
    served = [0]

    def fetch(skip: int, top: int) -> Listing:
        if log is not None:
            log.append(skip)
        page = Listing([i if isinstance(i, Item) else Item(i) for i in ids[skip:skip + top]],
                       len(ids))
        served[0] += 1
        after_each(served[0])
        return page

    return fetch


def ids(n: int) -> list[str]:
    return [f"t{i:03d}" for i in range(n)]


def read_all(fetch, page_size: int = 10, cursor: Cursor | None = None) -> list[str]:
    return [t.id for page in pages(fetch, page_size=page_size, cursor=cursor)
            for t in page.tickets]


def test_stable_list_is_read_once_each() -> None:
    assert read_all(listing(ids(95))) == ids(95)


def test_a_server_serving_fewer_than_asked_is_read_to_its_end_at_its_own_size() -> None:
    """A short page is the end only where ``total`` agrees; then the pager asks for what
    the server serves, so the page downloaded ahead is the next one asked for."""
    asked: list[int] = []
    items = ids(95)

    def capped(skip: int, top: int) -> Listing:
        asked.append(top)
        return Listing([Item(i) for i in items[skip:skip + min(top, 7)]], len(items))

    assert read_all(capped, page_size=10) == items
    assert asked[0] == 10 and set(asked[1:]) == {7}


def test_a_short_page_with_nothing_new_ends_the_listing_whatever_total_claims() -> None:
    def inflated(skip: int, top: int) -> Listing:
        return Listing([Item(i) for i in ids(23)[skip:skip + top]], 10**6)

    assert read_all(inflated) == ids(23)


def test_removals_before_the_cursor_lose_nothing() -> None:
    data = ids(100)
    remaining = list(data)

    def remove_two_early(n: int) -> None:
        for _ in range(2):
            remaining.remove(remaining[n])  # before the cursor: shifts everything left

    got = read_all(listing(remaining, remove_two_early))
    assert set(remaining) <= set(got)


def test_shift_beyond_overlap_realigns_with_extra_requests() -> None:
    remaining = ids(200)
    log: list[int] = []

    def remove_many_early(n: int) -> None:
        if n == 3:
            del remaining[:25]  # far more than the overlap re-read

    got = read_all(listing(remaining, remove_many_early, log), page_size=20)
    assert set(remaining) <= set(got)
    assert len(log) > len(range(0, 200, 20)) + 1


def test_vanished_anchor_raises_paging_error() -> None:
    remaining = ids(100)

    def erase_everything_read(n: int) -> None:
        if n == 1:
            del remaining[:60]

    with pytest.raises(PagingError, match="shifted beyond recovery"):
        read_all(listing(remaining, erase_everything_read))


def test_a_listing_that_ignores_skip_ends_in_a_paging_error_not_a_loop() -> None:
    same = ids(10)
    served: list[int] = []

    def fetch(skip: int, top: int) -> Listing:
        served.append(skip)
        if len(served) > 20:
            raise AssertionError("still paging a listing that repeats itself")
        # A total far past the offsets asked for: the page is no lie of its own.
        return Listing([Item(i) for i in same[:top]], 1000)

    with pytest.raises(PagingError, match="repeats itself"):
        read_all(fetch)
    assert len(served) == 3  # the page, then two that brought nothing new


def test_one_full_page_without_new_tickets_while_realigning_is_not_a_repeat() -> None:
    data = ids(60)
    inserted = [f"n{i:03d}" for i in range(8)]

    def insert_before_the_cursor(n: int) -> None:
        if n == 1:  # eight tickets appear early: the anchor moves to the end of the next page
            data[2:2] = inserted

    assert set(read_all(listing(data, insert_before_the_cursor))) == set(ids(60))


def test_resume_from_cursor_reads_only_the_rest() -> None:
    data = ids(50)
    first = next(pages(listing(data), page_size=10))
    log: list[int] = []
    rest = read_all(listing(data, log=log), cursor=first.cursor)
    assert rest == data[10:]
    assert log[0] > 0


def test_changed_anchor_that_moved_to_the_end_is_not_trusted() -> None:
    """A window ending in the future keeps a changed ticket, at its end: the pager must
    not align on it there (it would skip everything in between)."""
    data = [Item(i) for i in ids(14)]

    def change_last_read(n: int) -> None:
        if n == 1:
            moved = data.pop(9)
            data.append(moved._replace(updated_at="2030-01-02T00:00:00.000Z"))

    got = read_all(listing(data, change_last_read))
    assert set(ids(14)) <= set(got)


def test_a_total_past_the_cap_stops_the_listing_before_its_page() -> None:
    ids = [f"t{i}" for i in range(30)]
    seen: list[str] = []
    with pytest.raises(TooManyTickets, match="max_event_tickets"):
        for page in pages(listing(ids), page_size=10, max_tickets=29):
            seen += [t.id for t in page.tickets]
    assert seen == []


def test_a_growing_total_stops_at_the_cap() -> None:
    ids = [f"t{i}" for i in range(25)]

    def grow(_served: int) -> None:
        ids.extend(f"n{len(ids)}-{k}" for k in range(10))

    read = 0
    with pytest.raises(TooManyTickets):
        for page in pages(listing(ids, after_each=grow), page_size=10, max_tickets=100):
            read += len(page.tickets)
    assert read <= 100


def test_problems_of_overlap_re_reads_are_not_repeated() -> None:
    def fetch(skip: int, top: int) -> Listing:
        items = [Item(f"t{i}") for i in range(skip, min(skip + top, 12))]
        return Listing(items, 12, tuple((i, f"bad t{skip + i}") for i in range(len(items))))

    lines = [line for page in pages(fetch, page_size=6, overlap=2) for line in page.problems]
    assert lines == [f"bad t{i}" for i in range(12)]
